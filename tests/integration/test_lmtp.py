"""LMTP delivery (RFC 2033) end to end: the real hongyan server handing mail
to Dovecot's LMTP server (dovecot-lmtpd, started by the test with its own
minimal configuration on a unix socket and a loopback port) through
virtual_transport and transport_maps, and to aiosmtpd.lmtp peers that
answer each recipient differently after the final dot, or hang up halfway
through those answers.

Senders are at local.test (mydestination, hongyan's own Maildir), so DSNs
land in the sender's Maildir; LMTP recipients are at virt.test
(virtual_mailbox_domains).
"""
import asyncio
import grp
import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from conftest import free_port, wait_for, wait_port
from test_outbound import dsn_messages, maillog, queue_ids, sendmail

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
    "virtual_mailbox_domains": "virt.test",
}


class Dovecot:
    """dovecot -F with a private configuration: LMTP only, on a unix socket
    and on a loopback port, Maildir under its own directory. The directory
    is short and under /tmp because unix socket paths are limited to 107
    octets. As root the mail is stored as nobody (Dovecot will not deliver
    as uid 0); otherwise as the current user."""

    def __init__(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="hydv", dir="/tmp"))
        os.chmod(self.dir, 0o755)  # hongyan's worker (mail_owner) must reach the socket
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        self.socket = self.dir / "lmtp"
        self.port = free_port()
        self.log = self.dir / "dovecot.log"
        self.proc = None
        if os.geteuid() == 0:
            user = "nobody"
            os.chmod(self.mail, 0o777)
        else:
            user = pwd.getpwuid(os.geteuid()).pw_name
        pw = pwd.getpwnam(user)
        group = grp.getgrgid(pw.pw_gid).gr_name
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""
protocols = lmtp
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
ssl = no
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
mail_location = maildir:{self.mail}/%d/%n
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={self.mail}/%d/%n
}}
service lmtp {{
  unix_listener {self.socket} {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
""")

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            wait_port(self.port, proc=self.proc)
            if not wait_for(lambda: self.socket.exists(), timeout=10):
                raise TimeoutError("no LMTP socket")
        except Exception:
            self.stop()
            raise RuntimeError("dovecot did not start:\n" + self.log_text())
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: its children too
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def messages(self, domain, user):
        d = self.mail / domain / user / "new"
        return sorted(d.iterdir()) if d.exists() else []


@pytest.fixture
def dovecot():
    dv = Dovecot()
    yield dv
    dv.cleanup()


def make_server(server_factory, extra, start=True):
    settings = dict(LOCAL)
    settings.update(extra)
    return server_factory(extra=settings, start=start)


def test_dovecot_virtual_transport_unix_socket(server_factory, dovecot):
    """The usual Dovecot set-up: virtual_transport = lmtp:unix:PATH."""
    dovecot.start()
    srv = make_server(server_factory, {"virtual_transport": "lmtp:unix:%s" % dovecot.socket})
    sendmail(srv, ["bob@virt.test", "carol@virt.test", "dave@local.test"],
             body="Subject: lmtp test\n\nhello over lmtp\n")
    assert wait_for(lambda: dovecot.messages("virt.test", "bob") and
                    dovecot.messages("virt.test", "carol"), timeout=20), \
        maillog(srv) + dovecot.log_text()
    body = dovecot.messages("virt.test", "bob")[0].read_text(errors="replace")
    assert "hello over lmtp" in body and "Subject: lmtp test" in body
    # mydestination mail still goes to hongyan's own Maildir; nothing for virt.test there.
    assert wait_for(lambda: srv.messages("local.test", "dave"), timeout=20), maillog(srv)
    assert not srv.messages("virt.test", "bob")
    log = maillog(srv)
    # Postfix's shape: relay=myhostname[socket path], Dovecot's own reply per recipient.
    assert wait_for(lambda: re.search(
        r"to=<carol@virt\.test>, relay=mx\.local\.test\[%s\], delay=[0-9.]+, delays=[0-9./]+, dsn=2\.0\.0, "
        r"status=sent \(250 2\.0\.0 <carol@virt\.test> \S+ Saved\)" % re.escape(str(dovecot.socket)),
        maillog(srv)), timeout=10), log
    assert "to=<dave@local.test>, relay=local" in maillog(srv)
    assert wait_for(lambda: not queue_ids(srv), timeout=10)


def test_dovecot_transport_maps_inet_and_reuse(server_factory, dovecot):
    """transport_maps lmtp:inet:127.0.0.1:PORT for a mydestination domain and
    lmtp:[127.0.0.1]:PORT for one address; transport_maps wins over the
    built-in Maildir, as in Postfix."""
    dovecot.start()
    srv = make_server(server_factory, {}, start=False)
    table = srv.tmp / "transport"
    table.write_text("local.test lmtp:inet:127.0.0.1:%d\n"
                     "erin@virt.test lmtp:[127.0.0.1]:%d\n" % (dovecot.port, dovecot.port))
    os.chmod(table, 0o644)
    srv.settings["transport_maps"] = "texthash:%s" % table
    srv.settings["smtp_connection_cache_time_limit"] = "10s"
    srv.write_config()
    srv.start()
    sendmail(srv, ["frank@local.test"])
    assert wait_for(lambda: dovecot.messages("local.test", "frank"), timeout=20), \
        maillog(srv) + dovecot.log_text()
    assert not srv.messages("local.test", "frank")
    sendmail(srv, ["frank@local.test"], body="Subject: second\n\nsecond message\n")
    sendmail(srv, ["erin@virt.test"])
    assert wait_for(lambda: len(dovecot.messages("local.test", "frank")) == 2 and
                    dovecot.messages("virt.test", "erin"), timeout=20), \
        maillog(srv) + dovecot.log_text()
    assert not srv.messages("virt.test", "erin")
    log = maillog(srv)
    assert re.search(r"to=<frank@local\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                     r"status=sent \(250 2\.0\.0 <frank@local\.test>" % dovecot.port, log), log
    # The cached LMTP connection carried the second message to the same next hop:
    # Dovecot names a session's second transaction ID:T2.
    assert re.search(r"lmtp\(frank@local\.test\)<\d+><[^>]+:T2>: .*saved mail",
                     dovecot.log_text()), dovecot.log_text()


def test_socket_missing_then_flush(server_factory, dovecot):
    """No socket: deferred (4.4.1), queued; once Dovecot listens, `queue flush` delivers."""
    srv = make_server(server_factory, {
        "virtual_transport": "lmtp:unix:%s" % dovecot.socket,
        # Only the flush may retry within this test.
        "minimal_backoff_time": "300s",
        "maximal_backoff_time": "600s",
    })
    sendmail(srv, ["bob@virt.test"])
    assert wait_for(lambda: "status=deferred" in maillog(srv), timeout=20), maillog(srv)
    log = maillog(srv)
    assert re.search(r"to=<bob@virt\.test>, relay=none, .*dsn=4\.4\.1, status=deferred "
                     r"\(connect to mx\.local\.test\[%s\]: No such file or directory\)"
                     % re.escape(str(dovecot.socket)), log), log
    ids = queue_ids(srv)
    assert len(ids) == 1
    assert "No such file or directory" in srv.cmd("queue").stdout
    dovecot.start()
    r = srv.cmd("queue", "flush")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: dovecot.messages("virt.test", "bob"), timeout=20), \
        maillog(srv) + dovecot.log_text()
    assert wait_for(lambda: "status=sent" in maillog(srv), timeout=10)
    assert wait_for(lambda: not queue_ids(srv), timeout=10), srv.cmd("queue").stdout
    assert len(dovecot.messages("virt.test", "bob")) == 1


class LMTPPeer:
    """An aiosmtpd.lmtp server on loopback. After the final dot it answers
    each accepted recipient with replies[local part] (default 250), one line
    each, in RCPT order (RFC 2033 4.2); with hangup_after=N it sends N
    answers and drops the connection."""

    def __init__(self, replies=None, hangup_after=None):
        self.replies = replies or {}
        self.hangup_after = hangup_after
        self.transactions = []  # rcpt lists, one per DATA
        self.lock = threading.Lock()
        self.port = free_port()
        peer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with peer.lock:
                    peer.transactions.append(list(envelope.rcpt_tos))
                lines = []
                for rcpt in envelope.rcpt_tos:
                    local = rcpt.split("@")[0].lower()
                    lines.append(peer.replies.get(local, "250 2.0.0 <%s> Saved" % rcpt))
                if peer.hangup_after is not None:
                    for line in lines[:peer.hangup_after]:
                        await server.push(line)
                    server.transport.abort()
                    return "421 4.3.0 gone"  # never reaches the client
                return "\r\n".join(lines)

        class _Controller(Controller):
            def factory(self):
                return LMTP(self.handler)

        self.controller = _Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def rcpts(self):
        with self.lock:
            return [list(t) for t in self.transactions]


def test_per_recipient_results(server_factory):
    """One 250, one 452, one 550 after the dot: delivered, deferred (still
    queued, and tried again alone), bounced (a DSN to the sender)."""
    with LMTPPeer({"later": "452 4.2.2 <later@virt.test> Mailbox is full",
                   "gone": "550 5.1.1 <gone@virt.test> User doesn't exist"}) as peer:
        srv = make_server(server_factory,
                          {"virtual_transport": "lmtp:inet:[127.0.0.1]:%d" % peer.port})
        sendmail(srv, ["ok@virt.test", "later@virt.test", "gone@virt.test"])
        assert wait_for(lambda: "to=<later@virt.test>" in maillog(srv), timeout=20), maillog(srv)
        log = maillog(srv)
        relay = r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d" % peer.port
        assert re.search(r"to=<ok@virt\.test>, %s, .*dsn=2\.0\.0, status=sent "
                         r"\(250 2\.0\.0 <ok@virt\.test> Saved\)" % relay, log), log
        assert re.search(r"to=<later@virt\.test>, %s, .*dsn=4\.2\.2, status=deferred "
                         r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 452 4\.2\.2 "
                         r"<later@virt\.test> Mailbox is full" % relay, log), log
        assert re.search(r"to=<gone@virt\.test>, %s, .*dsn=5\.1\.1, status=bounced "
                         r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1 "
                         r"<gone@virt\.test> User doesn't exist" % relay, log), log
        assert peer.rcpts()[0] == ["ok@virt.test", "later@virt.test", "gone@virt.test"]
        # The DSN names the bounced recipient only.
        assert wait_for(lambda: dsn_messages(srv), timeout=20), maillog(srv)
        dsn = dsn_messages(srv)[0]
        assert "gone@virt.test" in dsn and "5.1.1" in dsn
        assert "later@virt.test" not in dsn and "ok@virt.test" not in dsn
        # The deferred one stays queued, alone, with its own error.
        q = srv.cmd("queue").stdout
        assert "later@virt.test" in q and "Mailbox is full" in q, q
        assert "ok@virt.test" not in q and "gone@virt.test" not in q, q
        # The retry (after the 1s backoff) carries only the deferred recipient.
        assert wait_for(lambda: len(peer.rcpts()) >= 2, timeout=20), maillog(srv)
        assert peer.rcpts()[1] == ["later@virt.test"]


def test_connection_lost_between_replies(server_factory):
    """The peer answers the first recipient, then hangs up: that one is
    delivered (never sent again), the other deferred and retried alone."""
    with LMTPPeer(hangup_after=1) as peer:
        srv = make_server(server_factory,
                          {"virtual_transport": "lmtp:inet:[127.0.0.1]:%d" % peer.port})
        sendmail(srv, ["first@virt.test", "second@virt.test"])
        assert wait_for(lambda: "to=<second@virt.test>" in maillog(srv), timeout=20), maillog(srv)
        log = maillog(srv)
        assert re.search(r"to=<first@virt\.test>, .*status=sent \(250 2\.0\.0 "
                         r"<first@virt\.test> Saved\)", log), log
        assert re.search(r"to=<second@virt\.test>, .*status=deferred \(lost connection with "
                         r"127\.0\.0\.1\[127\.0\.0\.1\] while sending end of data", log), log
        assert wait_for(lambda: len(peer.rcpts()) >= 2, timeout=20), maillog(srv)
        assert peer.rcpts()[0] == ["first@virt.test", "second@virt.test"]
        assert all(t == ["second@virt.test"] for t in peer.rcpts()[1:]), peer.rcpts()
        assert "first@virt.test" not in srv.cmd("queue").stdout
