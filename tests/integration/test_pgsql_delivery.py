"""pgsql: tables of the delivery side (issue 15): transport_maps,
sender_dependent_relayhost_maps and smtp_sasl_password_maps are asked on
the work queue, never on the event loop: while a query is slow, an SMTP
session of the same process is served at once. A database that is down
defers the mail with the reason, never bounces it, and the mail goes once
the database is back. Against the private PostgreSQL 15 cluster of
pgserver.py and aiosmtpd peers (smtppeer.py)."""
import contextlib
import smtplib
import threading
import time

import pytest

import pgserver
from conftest import wait_for
from smtppeer import Peer

pytestmark = pytest.mark.skipif(not pgserver.available(),
                                reason="PostgreSQL 15 (Debian postgresql) and root needed")

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
    "smtpd_peername_lookup": "no",
}


@pytest.fixture(scope="module")
def pg():
    server = pgserver.PgServer()
    server.psql(pgserver.MAIL_SCHEMA)
    server.psql("""SET ROLE mail;
        CREATE TABLE transport (k text PRIMARY KEY, v text NOT NULL);
        CREATE TABLE relayhost (sender text PRIMARY KEY, host text NOT NULL);
        CREATE TABLE sasl (k text PRIMARY KEY, cred text NOT NULL);""", db="mail")
    yield server
    server.destroy()


def send(srv, rcpt, sender="alice@local.test", subject="pg"):
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.sendmail(sender, [rcpt], "From: %s\r\nSubject: %s\r\n\r\nhello\r\n" % (sender, subject))


@contextlib.contextmanager
def sending(srv, rcpt):
    """Sends from a thread: the delivery may start before the client has
    its last reply, and a loop stuck in a lookup would hold that reply."""
    t = threading.Thread(target=send, args=(srv, rcpt), daemon=True)
    t.start()
    try:
        yield
    finally:
        t.join(30)


def maillog(srv):
    p = srv.tmp / "maillog"
    return p.read_text(errors="replace") if p.exists() else ""


def result_line(srv, rcpt):
    """The delivery line (status=...) of rcpt, once there is one."""
    def find():
        lines = [l for l in maillog(srv).splitlines() if "to=<%s>" % rcpt in l and "status=" in l]
        return lines[0] if lines else None
    line = wait_for(find, timeout=20)
    assert line, srv.log_text()[-2000:]
    return line


def prompt_session(srv):
    """Seconds an SMTP session (no table involved) takes to be served."""
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.ehlo("other.test")
        assert c.mail("x@local.test")[0] == 250
        assert c.rcpt("postmaster@local.test")[0] == 250
        c.rset()
    return time.monotonic() - start


def test_transport_maps_in_postgres(server_factory, tmp_path, pg):
    with Peer() as peer:
        pg.psql("SET ROLE mail; DELETE FROM transport; INSERT INTO transport VALUES "
                "('routed.example', 'smtp:[127.0.0.1]:%d'), "
                "('moved@local.test', 'smtp:[127.0.0.1]:%d'), "
                "('slow.example', 'smtp:[127.0.0.1]:%d');" % ((peer.port,) * 3), db="mail")
        # The lookup of the domain slow.example takes 2 s; the others none.
        cf = pgserver.table_file(
            tmp_path / "transport.cf", pg,
            "SELECT v FROM transport WHERE k='%s' UNION ALL SELECT NULL FROM "
            "pg_sleep(CASE WHEN '%s'='slow.example' THEN 2 ELSE 0 END)")
        srv = server_factory(dict(LOCAL, transport_maps="pgsql:%s" % cf))
        send(srv, "bob@routed.example")
        assert wait_for(lambda: len(peer.messages) == 1, timeout=20), srv.log_text()[-2000:]
        assert wait_for(lambda: "relay=127.0.0.1[127.0.0.1]:%d" % peer.port in maillog(srv))
        # Local recipients: the table's answer (none, or a next hop) decided off the loop too.
        send(srv, "ann@local.test")
        assert wait_for(lambda: len(srv.messages("local.test", "ann")) == 1, timeout=20)
        send(srv, "moved@local.test")
        assert wait_for(lambda: len(peer.messages) == 2, timeout=20), srv.log_text()[-2000:]
        assert peer.messages[1].rcpt_tos == ["moved@local.test"]
        assert not srv.messages("local.test", "moved")
        # A slow routing query: the SMTP server goes on meanwhile.
        before = pg.statements("k='slow.example'")
        with sending(srv, "carol@slow.example"):
            assert wait_for(lambda: pg.statements("k='slow.example'") > before, timeout=10)
            assert prompt_session(srv) < 1.0
        assert wait_for(lambda: len(peer.messages) == 3, timeout=20), srv.log_text()[-2000:]
        # The database down: deferred with the reason, then sent once it is back.
        pg.stop()
        try:
            send(srv, "dave@routed.example")
            line = result_line(srv, "dave@routed.example")
            assert "status=deferred" in line and "transport_maps lookup" in line, line
            assert "cannot connect to the database" in line, line
            assert "status=bounced" not in maillog(srv)
        finally:
            pg.start()
        assert wait_for(lambda: len(peer.messages) == 4, timeout=30), srv.log_text()[-2000:]


def test_sender_dependent_relayhost_in_postgres(server_factory, tmp_path, pg):
    with Peer() as relay:
        pg.psql("SET ROLE mail; DELETE FROM relayhost; INSERT INTO relayhost VALUES "
                "('alice@local.test', '[127.0.0.1]:%d');" % relay.port, db="mail")
        cf = pgserver.table_file(tmp_path / "relayhost.cf", pg,
                                 "SELECT host FROM relayhost WHERE sender='%s'")
        srv = server_factory(dict(LOCAL, sender_dependent_relayhost_maps="pgsql:%s" % cf,
                                  # Anything not in the table would go here: nothing listens.
                                  relayhost="[127.0.0.1]:9"))
        send(srv, "bob@elsewhere.example")
        assert wait_for(lambda: len(relay.messages) == 1, timeout=20), srv.log_text()[-2000:]
        assert relay.messages[0].rcpt_tos == ["bob@elsewhere.example"]
        pg.stop()
        try:
            send(srv, "carol@elsewhere.example")
            line = result_line(srv, "carol@elsewhere.example")
            assert "status=deferred" in line, line
            assert "sender_dependent_relayhost_maps lookup" in line, line
        finally:
            pg.start()
        assert wait_for(lambda: len(relay.messages) == 2, timeout=30), srv.log_text()[-2000:]


def test_relay_password_in_postgres(server_factory, tmp_path, pg):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "p1"}) as relay:
        pg.psql("SET ROLE mail; DELETE FROM sasl; INSERT INTO sasl VALUES "
                "('[127.0.0.1]:%d', 'u1:p1');" % relay.port, db="mail")
        cf = pgserver.table_file(
            tmp_path / "sasl.cf", pg,
            "SELECT cred FROM sasl WHERE k='%s' UNION ALL SELECT NULL FROM "
            "pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM sasl WHERE k='slow') THEN 2 ELSE 0 END)")
        srv = server_factory(dict(LOCAL, relayhost="[127.0.0.1]:%d" % relay.port,
                                  smtp_sasl_auth_enable="yes",
                                  smtp_sasl_password_maps="pgsql:%s" % cf,
                                  smtp_tls_security_level="may",
                                  # Every message on a new connection, each asking the table.
                                  smtp_connection_cache_time_limit="0"))
        send(srv, "bob@elsewhere.example")
        assert wait_for(lambda: len(relay.messages) == 1, timeout=20), srv.log_text()[-2000:]
        assert relay.auth_ok == [("u1", "PLAIN")]
        # Slow credentials: the SMTP server is not held up meanwhile.
        pg.psql("SET ROLE mail; INSERT INTO sasl VALUES ('slow', 'x');", db="mail")
        before = pg.statements("FROM sasl WHERE k='[127.0.0.1]")
        with sending(srv, "carol@elsewhere.example"):
            assert wait_for(lambda: pg.statements("FROM sasl WHERE k='[127.0.0.1]") > before,
                            timeout=10)
            assert prompt_session(srv) < 1.0
        assert wait_for(lambda: len(relay.messages) == 2, timeout=20), srv.log_text()[-2000:]
        pg.psql("SET ROLE mail; DELETE FROM sasl WHERE k='slow';", db="mail")
        pg.stop()
        try:
            send(srv, "dave@elsewhere.example")
            line = result_line(srv, "dave@elsewhere.example")
            assert "dsn=4.3.0, status=deferred" in line and "smtp_sasl_password_maps" in line, line
            assert "p1" not in maillog(srv).replace("p1]", "")
        finally:
            pg.start()
        assert wait_for(lambda: len(relay.messages) == 3, timeout=30), srv.log_text()[-2000:]
        assert relay.auth_ok == [("u1", "PLAIN")] * 3
