"""pgsql: tables outside alias and mailbox resolution never make the event
loop wait (issue 15): domain lists (virtual_mailbox_domains, relay_domains,
...), access maps in restrictions and smtpd_sender_login_maps are asked on
the work queue while the session waits (pending/resume). A table that
cannot answer is 451 4.3.0 "<addr>: Temporary lookup failure" (Postfix's
reject_dict_retry() in smtpd_check.c), never the 554 relay refusal nor a
"user unknown". Against the private PostgreSQL 15 cluster of pgserver.py,
and a listener that accepts and never answers (a stalled database)."""
import smtplib
import socket
import threading
import time

import pytest

import pgserver
from conftest import wait_for

pytestmark = pytest.mark.skipif(not pgserver.available(),
                                reason="PostgreSQL 15 (Debian postgresql) and root needed")

TEMP = b"4.3.0 <%s>: Temporary lookup failure"


@pytest.fixture(scope="module")
def pg():
    server = pgserver.PgServer()
    server.psql(pgserver.MAIL_SCHEMA)
    server.psql("""SET ROLE mail;
        INSERT INTO mailbox VALUES ('bob@example.net', 'example.net/bob/', true);
        INSERT INTO domain VALUES ('example.net'), ('relayed.test');
        CREATE TABLE access (k text PRIMARY KEY, v text NOT NULL);
        INSERT INTO access VALUES ('blocked@example.com', 'REJECT no thanks'),
                                  ('ok.test', 'OK');
        CREATE TABLE login (address text PRIMARY KEY, owner text NOT NULL);
        INSERT INTO login VALUES ('owned@sender.test', 'sam');""", db="mail")
    yield server
    server.destroy()


class SilentListener:
    """Accepts connections and never says a word: a database that stalls."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


def session(port):
    c = smtplib.SMTP("127.0.0.1", port, timeout=30)
    c.ehlo("client.test")
    return c


def rcpt(port, address, sender="alice@sender.test"):
    with session(port) as c:
        assert c.mail(sender)[0] == 250
        return c.rcpt(address)


def domain_cf(tmp_path, pg, name="domain.cf", **extra):
    return pgserver.table_file(tmp_path / name, pg,
                               "SELECT 'x' FROM domain WHERE domain='%s'", **extra)


def test_domain_lists_from_postgres_and_db_down(server_factory, tmp_path, pg):
    """virtual_mailbox_domains and relay_domains in PostgreSQL: found, not
    found (relay refused), and 451 when the database is down, for a client
    outside mynetworks whose mail depends on the answer."""
    domains = domain_cf(tmp_path, pg)
    srv = server_factory({
        "mynetworks": "10.0.0.0/8",
        "smtpd_peername_lookup": "no",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "virtual_mailbox_domains": "pgsql:%s" % domains,
        "relay_domains": "pgsql:%s" % domains,
    })
    port = srv.smtpd_port
    assert rcpt(port, "bob@example.net")[0] == 250
    assert rcpt(port, "anyone@example.com")[0] == 250  # mydestination: no table asked
    assert rcpt(port, "x@elsewhere.test") == (
        554, b"5.7.1 <x@elsewhere.test>: Relay access denied")
    pg.stop()
    try:
        for addr in ("bob@example.net", "x@elsewhere.test"):
            code, text = rcpt(port, addr)
            assert (code, text) == (451, TEMP % addr.encode()), (addr, code, text)
        # A domain the static part of the list answers needs no database.
        assert rcpt(port, "anyone@example.com")[0] == 250
        assert "recipient domain lookup for <x@elsewhere.test> failed" in srv.log_text()
    finally:
        pg.start()
    assert rcpt(port, "bob@example.net")[0] == 250
    assert rcpt(port, "x@elsewhere.test")[0] == 554


def test_mynetworks_client_and_domain_list_down(server_factory, tmp_path, pg):
    """A client that may relay still gets 451, not a silent "remote" guess
    that would send local mail out by MX."""
    srv = server_factory({
        "smtpd_peername_lookup": "no",
        "virtual_mailbox_domains": "pgsql:%s" % domain_cf(tmp_path, pg),
    })
    assert rcpt(srv.smtpd_port, "bob@example.net")[0] == 250
    pg.stop()
    try:
        assert rcpt(srv.smtpd_port, "bob@example.net") == (451, TEMP % b"bob@example.net")
    finally:
        pg.start()


def test_stalled_domain_table_does_not_stall_other_sessions(server_factory, tmp_path, pg):
    """A database that accepts and never answers: the RCPT that needs it
    waits (then 451 after timeout) while another session is served at once,
    and the waiting session's pipelined commands are answered in order."""
    silent = SilentListener()
    try:
        cf = tmp_path / "stalled.cf"
        cf.write_text("hosts = 127.0.0.1:%d\nuser = mail\npassword = x\ndbname = mail\n"
                      "query = SELECT 'x' FROM domain WHERE domain='%%s'\ntimeout = 3\n"
                      % silent.port)
        srv = server_factory({
            "mynetworks": "10.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "relay_domains": "pgsql:%s" % cf,
        })
        a = socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=15)
        fa = a.makefile("rb")
        assert fa.readline().startswith(b"220")
        start = time.monotonic()
        a.sendall(b"EHLO a.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<y@somewhere.test>\r\n"
                  b"NOOP\r\n")
        time.sleep(0.3)
        with session(srv.smtpd_port) as b:
            assert b.noop()[0] == 250
            assert b.mail("y@sender.test")[0] == 250
            # mydestination answers without the database.
            assert b.rcpt("postmaster@example.com")[0] == 250
            other = time.monotonic() - start
        assert other < 1.5, other
        replies = []
        while len(replies) < 4:
            line = fa.readline()
            assert line, replies
            if line[3:4] == b" ":
                replies.append(line.rstrip())
        waited = time.monotonic() - start
        a.close()
        assert [r[:3] for r in replies] == [b"250", b"250", b"451", b"250"], replies
        assert replies[2] == b"451 " + TEMP % b"y@somewhere.test"
        assert 2.5 <= waited < 10, waited
    finally:
        silent.close()


def test_access_map_in_postgres(server_factory, tmp_path, pg):
    """check_sender_access / check_recipient_access with pgsql:: the value
    applies (REJECT text, OK), a slow query does not stall another session,
    and a database that is down is 451 4.3.5, never a pass or a 5xx."""
    access = pgserver.table_file(
        tmp_path / "access.cf", pg,
        "SELECT v FROM access WHERE k='%s' UNION ALL SELECT NULL FROM "
        "pg_sleep(CASE WHEN '%s' LIKE 'slow%%' THEN 2 ELSE 0 END)", timeout="5")
    srv = server_factory({
        "smtpd_peername_lookup": "no",
        "smtpd_sender_restrictions": "check_sender_access pgsql:%s" % access,
        "smtpd_recipient_restrictions": "check_recipient_access pgsql:%s, "
                                        "permit_mynetworks, reject_unauth_destination" % access,
    })
    port = srv.smtpd_port
    assert rcpt(port, "x@ok.test")[0] == 250
    with session(port) as c:
        assert c.mail("blocked@example.com")[0] == 250  # smtpd_delay_reject: at RCPT
        assert c.rcpt("x@ok.test") == (554, b"5.7.1 <blocked@example.com>: Sender address rejected: no thanks")
    # A slow access lookup: another session goes on meanwhile.
    a = socket.create_connection(("127.0.0.1", port), timeout=15)
    fa = a.makefile("rb")
    assert fa.readline().startswith(b"220")
    start = time.monotonic()
    a.sendall(b"EHLO a.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<slow@ok.test>\r\nQUIT\r\n")
    time.sleep(0.2)
    assert rcpt(port, "x@ok.test")[0] == 250
    assert time.monotonic() - start < 1.5
    replies = []
    while len(replies) < 4:
        line = fa.readline()
        assert line, replies
        if line[3:4] == b" ":
            replies.append(line[:3])
    a.close()
    assert replies == [b"250", b"250", b"250", b"221"]
    assert time.monotonic() - start >= 1.8
    pg.stop()
    try:
        # Postfix's check_access() reply for a table that fails (bench/compare_restrict.py).
        assert rcpt(port, "x@ok.test") == (
            451, b"4.3.5 <alice@sender.test>: Sender address rejected: Server configuration error")
        assert "lookup error for" in srv.log_text()
    finally:
        pg.start()


def test_sender_login_maps_in_postgres(server_factory, tmp_path, pg):
    """reject_sender_login_mismatch with smtpd_sender_login_maps = pgsql:
    a sender owned by a login cannot be used without it; with the database
    down the check is 451, never a pass."""
    logins = pgserver.table_file(
        tmp_path / "login.cf", pg,
        "SELECT owner FROM login WHERE address='%s' UNION ALL SELECT NULL FROM "
        "pg_sleep(CASE WHEN '%s' LIKE 'slow%%' THEN 2 ELSE 0 END)")
    srv = server_factory({
        "smtpd_peername_lookup": "no",
        "smtpd_sender_restrictions": "reject_sender_login_mismatch",
        "smtpd_sender_login_maps": "pgsql:%s" % logins,
    })
    port = srv.smtpd_port
    assert rcpt(port, "x@example.com", sender="free@sender.test")[0] == 250
    assert rcpt(port, "x@example.com", sender="owned@sender.test") == (
        553, b"5.7.1 <owned@sender.test>: Sender address rejected: not logged in")
    # A slow login lookup holds its own session only.
    a = socket.create_connection(("127.0.0.1", port), timeout=15)
    fa = a.makefile("rb")
    assert fa.readline().startswith(b"220")
    start = time.monotonic()
    a.sendall(b"EHLO a.test\r\nMAIL FROM:<slow@sender.test>\r\nRCPT TO:<x@example.com>\r\n"
              b"QUIT\r\n")
    time.sleep(0.2)
    assert rcpt(port, "x@example.com", sender="free@sender.test")[0] == 250
    assert time.monotonic() - start < 1.5
    codes = []
    while len(codes) < 4:
        line = fa.readline()
        assert line, codes
        if line[3:4] == b" ":
            codes.append(line[:3])
    a.close()
    assert codes == [b"250", b"250", b"250", b"221"]
    assert time.monotonic() - start >= 1.8
    pg.stop()
    try:
        assert rcpt(port, "x@example.com", sender="owned@sender.test") == (
            451, b"4.3.0 <owned@sender.test>: Temporary lookup failure")
    finally:
        pg.start()


def test_submission_sender_login_in_postgres(server_factory, tmp_path, pg):
    """The submission port's own check at MAIL FROM for a logged-in user,
    with smtpd_sender_login_maps = pgsql:: owned, not owned, and 451 with
    the database down (never a pass: the sender stays the owner's)."""
    from smtpclient import RawClient
    from test_submission import plain_b64
    logins = pgserver.table_file(tmp_path / "login.cf", pg,
                                 "SELECT owner FROM login WHERE address='%s'")
    srv = server_factory({"smtpd_peername_lookup": "no",
                          "relayhost": "[127.0.0.1]:9",
                          "smtpd_sasl_failure_delay": "0",
                          "smtpd_sender_login_maps": "pgsql:%s" % logins}, start=False)
    r = srv.cmd("user", "add", "--sha512", "sam", input="sam-pw\n")
    assert r.returncode == 0, r.stderr
    srv.start()
    c = RawClient(srv.submission_port)
    assert c.reply()[0] == 220
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_b64("sam", "sam-pw"))[0] == 235
    assert c.cmd("MAIL FROM:<owned@sender.test>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    code, text, _ = c.cmd("MAIL FROM:<other@sender.test>")
    assert code == 553 and text.startswith("5.7.1 <other@sender.test>: Sender address rejected: "
                                           "not owned by user sam"), text
    pg.stop()
    try:
        code, text, _ = c.cmd("MAIL FROM:<owned@sender.test>")
        assert (code, text) == (451, "4.3.0 <owned@sender.test>: Temporary lookup failure"), text
    finally:
        pg.start()
    assert c.cmd("MAIL FROM:<owned@sender.test>")[0] == 250
    c.close()


def test_milter_added_recipient_resolved_off_the_loop(server_factory, tmp_path, pg):
    """A recipient a milter adds (smfi_addrcpt) is expanded like one given
    at RCPT; with a slow pgsql: alias table that happens on the work queue
    while another session is served."""
    from test_milter import MilterPeer
    pg.psql("SET ROLE mail; INSERT INTO alias VALUES ('slowteam@example.net', 'bob@example.net');",
            db="mail")
    d = tmp_path / "milter"
    d.mkdir()
    m = MilterPeer(d, {"edits": [["addrcpt", "<slowteam@example.net>"]]}, False)
    try:
        valias = pgserver.table_file(
            tmp_path / "valias.cf", pg,
            "SELECT goto FROM alias WHERE address='%s' UNION ALL SELECT NULL FROM "
            "pg_sleep(CASE WHEN '%u' LIKE 'slow%%' THEN 2 ELSE 0 END)")
        mailbox = pgserver.table_file(tmp_path / "mailbox.cf", pg,
                                      "SELECT maildir FROM mailbox WHERE username='%s'")
        srv = server_factory({
            "smtpd_peername_lookup": "no",
            "smtpd_milters": "inet:127.0.0.1:%d" % m.port,
            "virtual_mailbox_domains": "example.net",
            "virtual_alias_maps": "pgsql:%s" % valias,
            "virtual_mailbox_maps": "pgsql:%s" % mailbox,
        })
        before = pg.statements("address='slowteam@example.net'")
        done = []

        def send():
            with session(srv.smtpd_port) as c:
                c.sendmail("alice@sender.test", ["postmaster@example.com"],
                           "From: alice@sender.test\r\nSubject: m\r\n\r\nhello\r\n")
            done.append(time.monotonic())
        t = threading.Thread(target=send, daemon=True)
        t.start()
        try:
            assert wait_for(lambda: pg.statements("address='slowteam@example.net'") > before,
                            timeout=15)
            start = time.monotonic()
            with session(srv.smtpd_port) as b:
                assert b.noop()[0] == 250
                assert b.mail("y@sender.test")[0] == 250
            assert time.monotonic() - start < 1.0
        finally:
            t.join(30)
        assert done
        assert wait_for(lambda: len(srv.messages("example.net", "bob")) == 1, timeout=20), \
            srv.log_text()[-2000:]
    finally:
        m.stop()


def test_rbl_reply_maps_in_postgres(server_factory, tmp_path, pg):
    """rbl_reply_maps = pgsql:: the reply template comes from the database
    (asked on the work queue once the DNS list has answered); with the
    database down it is Postfix's 451 4.3.5 configuration error."""
    from dnsserver import DNSServer
    pg.psql("SET ROLE mail; CREATE TABLE IF NOT EXISTS rbl (zone text PRIMARY KEY, "
            "reply text NOT NULL); DELETE FROM rbl; INSERT INTO rbl VALUES "
            "('zen.test', '$rbl_code 5.7.1 from the database: $client_address in $rbl_domain');",
            db="mail")
    replies = pgserver.table_file(tmp_path / "rbl.cf", pg,
                                  "SELECT reply FROM rbl WHERE zone='%s'")
    with DNSServer({"1.0.0.127.zen.test": [("A", "127.0.0.2")]}) as dns:
        srv = server_factory({"dns_resolver": dns.address, "smtpd_peername_lookup": "no",
                              "smtpd_client_restrictions": "reject_rbl_client zen.test",
                              "rbl_reply_maps": "pgsql:%s" % replies})
        assert rcpt(srv.smtpd_port, "x@example.com") == (
            554, b"5.7.1 from the database: 127.0.0.1 in zen.test")
        pg.stop()
        try:
            assert rcpt(srv.smtpd_port, "x@example.com") == (
                451, b"4.3.5 Server configuration error")
        finally:
            pg.start()


def test_stalled_database_does_not_hold_commits(server_factory, tmp_path):
    """Four sessions wait on a database that never answers, one per lookup
    thread: another client's message is still queued (its 250 after DATA
    needs the commit's thread pool) at once, because table lookups have
    threads of their own."""
    silent = SilentListener()
    waiting = []
    try:
        cf = tmp_path / "stalled.cf"
        cf.write_text("hosts = 127.0.0.1:%d\nuser = mail\npassword = x\ndbname = mail\n"
                      "query = SELECT 'x' FROM domain WHERE domain='%%s'\ntimeout = 4\n"
                      % silent.port)
        srv = server_factory({"smtpd_peername_lookup": "no", "relay_domains": "pgsql:%s" % cf})
        for i in range(4):
            a = socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=15)
            a.makefile("rb").readline()
            a.sendall(b"HELO a.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<y%d@far.test>\r\n" % i)
            waiting.append(a)
        assert wait_for(lambda: len(silent.held) >= 4, timeout=10)
        start = time.monotonic()
        with session(srv.smtpd_port) as b:
            b.sendmail("z@sender.test", ["postmaster@example.com"],
                       "From: z@sender.test\r\nSubject: now\r\n\r\nhello\r\n")
        took = time.monotonic() - start
        assert took < 1.5, took
    finally:
        for a in waiting:
            a.close()
        silent.close()
