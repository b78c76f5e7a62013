"""pgsql: lookup tables (Postfix pgsql_table(5)) against a private
PostgreSQL 15 cluster: `hongyan map query`, SQL quoting with a hostile
address, expansions, expansion_limit, a database that is down or slow is a
temporary failure (4xx at RCPT, never 5.1.1), and the connection is made
again when the database comes back."""
import os
import shutil
import smtplib
import time

import pytest

import pgserver
from conftest import wait_for

pytestmark = pytest.mark.skipif(not pgserver.available(),
                                reason="PostgreSQL 15 (Debian postgresql) and root needed")


@pytest.fixture(scope="module")
def pg():
    server = pgserver.PgServer()
    server.psql(pgserver.MAIL_SCHEMA)
    server.psql("""SET ROLE mail;
        INSERT INTO mailbox VALUES ('bob@example.net', 'example.net/bob/', true),
                                   ('off@example.net', 'example.net/off/', false);
        INSERT INTO alias VALUES ('sales@example.net', 'bob@example.net'),
                                 ('team@example.net', 'bob@example.net'),
                                 ('team@example.net', 'carol@example.net'),
                                 ('team@example.net', 'dave@example.net');
        INSERT INTO domain VALUES ('example.net');""", db="mail")
    yield server
    server.destroy()


@pytest.fixture
def mailbox_cf(tmp_path, pg):
    return pgserver.table_file(
        tmp_path / "mailbox.cf", pg,
        "SELECT maildir FROM mailbox WHERE username='%s' AND active")


def query(srv_or_none, spec, key, tmp_path=None):
    from conftest import run
    return run(["map", "query", spec, key])


def test_map_query_found_missing_and_hostile(mailbox_cf):
    r = query(None, "pgsql:%s" % mailbox_cf, "bob@example.net")
    assert r.returncode == 0 and r.stdout == "example.net/bob/\n", r.stderr
    assert query(None, "pgsql:%s" % mailbox_cf, "BOB@Example.NET").stdout == "example.net/bob/\n"
    r = query(None, "pgsql:%s" % mailbox_cf, "nobody@example.net")
    assert r.returncode == 1 and r.stdout == ""
    # Inactive rows are not results.
    assert query(None, "pgsql:%s" % mailbox_cf, "off@example.net").returncode == 1
    # SQL injection attempts are only keys that are not in the table.
    for hostile in ("x'or'1'='1@example.net", "x' OR '1'='1", "bob@example.net' --",
                    "a\\'; DROP TABLE mailbox; --@example.net"):
        r = query(None, "pgsql:%s" % mailbox_cf, hostile)
        assert r.returncode == 1 and r.stdout == "", (hostile, r.stdout, r.stderr)
    assert query(None, "pgsql:%s" % mailbox_cf, "bob@example.net").returncode == 0


def test_expansions_result_format_and_limits(tmp_path, pg):
    by_parts = pgserver.table_file(
        tmp_path / "parts.cf", pg,
        "SELECT maildir FROM mailbox WHERE username='%u' || '@' || '%d' AND '%1'='net' "
        "AND '%2'='example'", result_format="/var/mail/%s")
    r = query(None, "pgsql:%s" % by_parts, "bob@example.net")
    assert r.stdout == "/var/mail/example.net/bob/\n", r.stderr
    # %d of a key without a domain: Postfix skips the query (not found).
    assert query(None, "pgsql:%s" % by_parts, "bob").returncode == 1
    aliases = pgserver.table_file(tmp_path / "alias.cf", pg,
                                  "SELECT goto FROM alias WHERE address='%s' ORDER BY goto")
    r = query(None, "pgsql:%s" % aliases, "team@example.net")
    assert r.stdout == "bob@example.net,carol@example.net,dave@example.net\n"
    limited = pgserver.table_file(tmp_path / "limited.cf", pg,
                                  "SELECT goto FROM alias WHERE address='%s'",
                                  expansion_limit="2")
    assert query(None, "pgsql:%s" % limited, "sales@example.net").returncode == 0
    r = query(None, "pgsql:%s" % limited, "team@example.net")
    assert r.returncode == 75 and "expansion_limit" in r.stderr
    restricted = pgserver.table_file(tmp_path / "restricted.cf", pg,
                                     "SELECT maildir FROM mailbox WHERE username='%s'",
                                     domain="example.org")
    assert query(None, "pgsql:%s" % restricted, "bob@example.net").returncode == 1
    bad = tmp_path / "bad.cf"
    bad.write_text("hosts = 127.0.0.1\nquery = SELECT 1\nselect_field = x\n")
    r = query(None, "pgsql:%s" % bad, "k")
    assert r.returncode != 0 and "bad.cf:3" in r.stderr and "select_field" in r.stderr


def test_wrong_password_and_slow_query_are_temporary(tmp_path, pg):
    wrong = pgserver.table_file(tmp_path / "wrong.cf", pg, "SELECT 'x' WHERE '%s'<>''")
    wrong.write_text(wrong.read_text().replace("mail-secret", "not-it"))
    r = query(None, "pgsql:%s" % wrong, "bob@example.net")
    assert r.returncode == 75 and "password authentication failed" in r.stderr
    assert "not-it" not in r.stderr
    slow = pgserver.table_file(tmp_path / "slow.cf", pg,
                               "SELECT maildir FROM mailbox, pg_sleep(5) WHERE username='%s'",
                               timeout="1")
    start = time.monotonic()
    r = query(None, "pgsql:%s" % slow, "bob@example.net")
    assert r.returncode == 75 and "timed out" in r.stderr
    assert time.monotonic() - start < 4


def rcpt(srv, address):
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail("alice@sender.test")
        return c.rcpt(address)


def test_virtual_mailboxes_from_postgres_and_db_down(server_factory, mailbox_cf, pg, tmp_path):
    srv = server_factory({
        "virtual_mailbox_domains": "example.net",
        "virtual_mailbox_maps": "pgsql:%s" % mailbox_cf,
        "virtual_alias_maps": "pgsql:%s" % pgserver.table_file(
            tmp_path / "valias.cf", pg, "SELECT goto FROM alias WHERE address='%s'",
            domain="example.net", expansion_limit="1"),
        "smtpd_peername_lookup": "no",
        "mynetworks": "127.0.0.1/32",
    })
    assert rcpt(srv, "bob@example.net")[0] == 250
    assert rcpt(srv, "nobody@example.net")[0] == 550
    assert rcpt(srv, "x'or'1'='1@example.net")[0] == 550
    # An alias that resolves through the database to a mailbox in the database.
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.sendmail("alice@sender.test", ["sales@example.net"],
                   "From: alice@sender.test\r\nSubject: pg\r\n\r\nhello\r\n")
    assert wait_for(lambda: len(srv.messages("example.net", "bob")) == 1)
    pg.stop()
    try:
        code, text = rcpt(srv, "bob@example.net")
        assert code == 451 and b"4.3.0" in text, (code, text)
        assert rcpt(srv, "nobody@example.net")[0] == 451  # never "user unknown"
        assert "cannot connect to the database" in srv.log_text()
    finally:
        pg.start()
    # The connection is made again on the next lookup.
    assert rcpt(srv, "bob@example.net")[0] == 250
    assert rcpt(srv, "nobody@example.net")[0] == 550


def test_database_work_per_message(server_factory, mailbox_cf, pg):
    """What the database sees per message (docs/scale-out.md): one query
    when RCPT TO is checked, one when the delivery resolves the mailbox."""
    srv = server_factory({
        "virtual_mailbox_domains": "example.net",
        "virtual_mailbox_maps": "pgsql:%s" % mailbox_cf,
        "smtpd_peername_lookup": "no",
        "mynetworks": "127.0.0.1/32",
    })
    needle = "FROM mailbox WHERE username="
    before = pg.statements(needle)
    n = 10
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        for i in range(n):
            c.sendmail("alice@sender.test", ["bob@example.net"],
                       "From: alice@sender.test\r\nSubject: %d\r\n\r\nhello\r\n" % i)
    assert wait_for(lambda: len(srv.messages("example.net", "bob")) >= n)
    time.sleep(0.5)  # the last delivery's bookkeeping
    per_message = (pg.statements(needle) - before) / n
    assert per_message == 2, per_message


def test_slow_database_does_not_stall_other_sessions(server_factory, tmp_path, pg):
    """The RCPT lookup runs on the work queue: while one session waits on
    a slow query, another is served at once, and pipelined commands after
    the slow RCPT are answered in order."""
    slow = pgserver.table_file(
        tmp_path / "slow.cf", pg,
        "SELECT maildir FROM mailbox WHERE username='%s' UNION ALL SELECT NULL FROM "
        "pg_sleep(CASE WHEN '%u' LIKE 'slow%%' THEN 2 ELSE 0 END)", timeout="5")
    srv = server_factory({
        "virtual_mailbox_domains": "example.net",
        "virtual_mailbox_maps": "pgsql:%s" % slow,
        "smtpd_peername_lookup": "no",
        "mynetworks": "127.0.0.1/32",
    })
    import socket
    a = socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10)
    fa = a.makefile("rb")
    assert fa.readline().startswith(b"220")
    a.sendall(b"EHLO a.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<slow@example.net>\r\n"
              b"RCPT TO:<bob@example.net>\r\nRSET\r\n")
    start = time.monotonic()
    time.sleep(0.2)  # the slow query is under way
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=10) as b:
        b.ehlo("b.test")
        assert b.noop()[0] == 250
        assert b.mail("y@sender.test")[0] == 250
        # A recipient in another domain needs no table: answered at once too.
        assert b.rcpt("z@remote.test")[0] == 250
        # The same table on another of its pooled connections: not behind the slow query.
        assert b.rcpt("bob@example.net")[0] == 250
        other = time.monotonic() - start
    assert other < 1.5, other  # the other session did not wait for the slow query
    replies = []
    try:
        while len(replies) < 5:
            line = fa.readline()
            assert line, replies
            if line[3:4] == b" ":
                replies.append(line)
    finally:
        a.close()
    slow_wait = time.monotonic() - start
    # EHLO, MAIL, RCPT slow (550 after the pause), RCPT bob, RSET: in order.
    assert [r[:3] for r in replies] == [b"250", b"250", b"550", b"250", b"250"], replies
    assert slow_wait >= 1.5, slow_wait


def test_database_down_at_delivery_defers(server_factory, mailbox_cf, pg):
    """Accepted while the database answered, then delivered while it is
    down: deferred with the reason, never bounced, and delivered once it is
    back."""
    from conftest import free_port
    lmtp_port = free_port()
    srv = server_factory({
        "virtual_mailbox_domains": "example.net",
        "virtual_mailbox_maps": "pgsql:%s" % mailbox_cf,
        # Nothing listens here at first: the first attempts defer before the lookup matters.
        "virtual_transport": "lmtp:inet:127.0.0.1:%d" % lmtp_port,
        "smtpd_peername_lookup": "no",
        "mynetworks": "127.0.0.1/32",
    })
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.sendmail("alice@sender.test", ["bob@example.net"],
                   "From: alice@sender.test\r\nSubject: later\r\n\r\nhello\r\n")
    assert wait_for(lambda: "status=deferred" in srv.tmp.joinpath("maillog").read_text(),
                    timeout=20)
    pg.stop()
    try:
        assert wait_for(lambda: "recipient lookup failed" in
                        srv.tmp.joinpath("maillog").read_text(), timeout=20), srv.log_text()
        log = srv.tmp.joinpath("maillog").read_text()
        assert "status=bounced" not in log
        line = [l for l in log.splitlines() if "recipient lookup failed" in l][-1]
        assert "dsn=4.3.0, status=deferred" in line, line
    finally:
        pg.start()
    assert srv.cmd("queue", "--json").stdout.count('"bob@example.net"') == 1


def test_sendmail_pickup_waits_for_the_database(server_factory, mailbox_cf, pg):
    """Mail from sendmail is resolved at pickup, off the loop: with the
    database down it stays in maildrop/ (logged) and goes once it is back."""
    srv = server_factory({
        "virtual_mailbox_domains": "example.net",
        "virtual_mailbox_maps": "pgsql:%s" % mailbox_cf,
        "smtpd_peername_lookup": "no",
    })
    pg.stop()
    try:
        r = srv.cmd("sendmail", "bob@example.net",
                    input="From: root@example.com\nSubject: picked\n\nhello\n")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: "recipient lookup failed, will retry" in srv.log_text(),
                        timeout=20), srv.log_text()[-2000:]
        assert not srv.messages("example.net", "bob")
    finally:
        pg.start()
    assert wait_for(lambda: len(srv.messages("example.net", "bob")) == 1, timeout=30), \
        srv.log_text()[-2000:]


def test_unix_socket_without_a_password(tmp_path, pg):
    """hosts = unix:/path/.s.PGSQL.PORT, as Postfix writes it; with local
    (peer or trust) authentication the file holds no secret at all."""
    cf = tmp_path / "unix.cf"
    cf.write_text("hosts = unix:%s/.s.PGSQL.%d\nuser = mail\ndbname = mail\n"
                  "query = SELECT maildir FROM mailbox WHERE username='%%s'\n" % (pg.dir, pg.port))
    r = query(None, "pgsql:%s" % cf, "bob@example.net")
    assert r.returncode == 0 and r.stdout == "example.net/bob/\n", r.stderr
