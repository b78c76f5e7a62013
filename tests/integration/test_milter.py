"""smtpd_milters against real milters: a python3-milter (libmilter) test
filter that records what it is told and does every edit libmilter offers,
and broken filters (down, silent, garbage, endless packet) that must cost
one session a bounded wait and follow milter_default_action."""
import json
import os
import pathlib
import smtplib
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import free_port, wait_for, wait_port

HERE = pathlib.Path(__file__).resolve().parent
PY = "/usr/bin/python3"

MSG = (b"From: Alice <alice@example.net>\r\n"
       b"To: bob@example.com\r\n"
       b"Subject: hello\r\n"
       b"X-Folded: one\r\n two\r\n"
       b"\r\n"
       b"Body line one.\r\n"
       b"Body line two.\r\n")


class MilterPeer:
    """milterpeer.py under libmilter, on a loopback port."""

    def __init__(self, tmp, plan, unix=False):
        self.port = free_port()
        self.path = str(tmp / "milter.sock") if unix else None
        self.plan = tmp / "plan.json"
        self.seen_path = tmp / "seen.jsonl"
        self.plan.write_text(json.dumps(plan))
        self.log = open(tmp / "milter.log", "wb")
        self.proc = subprocess.Popen([PY, str(HERE / "milterpeer.py"), self.path or str(self.port),
                                      str(self.plan), str(self.seen_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if unix:
            assert wait_for(lambda: pathlib.Path(self.path).exists(), timeout=10)
            os.chmod(self.path, 0o666)  # reachable by mail_owner, as a packaged filter sets it
        else:
            wait_port(self.port, proc=self.proc)

    def set_plan(self, plan):
        self.plan.write_text(json.dumps(plan))

    def seen(self):
        if not self.seen_path.exists():
            return []
        return [json.loads(line) for line in self.seen_path.read_text().splitlines()]

    def events(self, name):
        return [e for e in self.seen() if e["event"] == name]

    def stop(self):
        # libmilter lets workers finish for seconds after SIGTERM; the test is over.
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def milter_factory(tmp_path):
    made = []

    def make(plan, name="m", unix=False):
        d = tmp_path / ("%s%d" % (name, len(made)))
        d.mkdir()
        if unix:
            os.chmod(d, 0o777)  # the worker runs as mail_owner when the tests run as root
        m = MilterPeer(d, plan, unix)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


def mailbox(srv, local="bob"):
    files = srv.messages("example.com", local)
    return [f.read_bytes() for f in files]


def send(srv, sender="alice@example.net", rcpts=("bob@example.com",), msg=MSG):
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.ehlo("client.example.net")
        return c.sendmail(sender, list(rcpts), msg)


def test_milter_sees_everything_with_postfix_macros(server_factory, milter_factory):
    m = milter_factory({})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port,
                          "mynetworks": "10.0.0.0/8"})
    send(srv)
    assert wait_for(lambda: mailbox(srv), timeout=10)
    conn = m.events("connect")[0]
    assert conn["addr"] == "127.0.0.1"
    assert conn["hostname"] in ("[127.0.0.1]", "localhost")
    assert conn["macros"]["j"] == "mx.example.com"
    assert conn["macros"]["{daemon_name}"] == "mx.example.com"
    assert conn["macros"]["{daemon_addr}"] == "127.0.0.1"
    assert conn["macros"]["v"].startswith("hongyan ")
    assert conn["macros"]["_"].endswith("[127.0.0.1]")
    assert m.events("helo")[0]["helo"] == "client.example.net"
    mail = m.events("mail")[0]
    assert mail["sender"] == "<alice@example.net>"
    assert mail["macros"]["{mail_addr}"] == "alice@example.net"
    rcpt = m.events("rcpt")[0]
    assert rcpt["rcpt"] == "<bob@example.com>"
    assert rcpt["macros"]["{rcpt_addr}"] == "bob@example.com"
    assert rcpt["macros"]["{rcpt_mailer}"] == "local"
    # The queue id is known from the first accepted recipient on.
    qid = m.events("eom")[0]["macros"]["i"]
    assert qid and qid in srv.log_text() + (srv.tmp / "maillog").read_text()
    headers = [(h["name"], h["value"]) for h in m.events("header")]
    # Our own Received: is hidden from the filter, as Postfix does; our
    # Authentication-Results (the inbound checks run first) is not.
    assert headers[0][0] == "Authentication-Results"
    assert headers[1] == ("From", "Alice <alice@example.net>")
    assert ("X-Folded", "one\n two") in headers
    assert not any(n == "Received" for n, _ in headers)
    body = "".join(b["chunk"] for b in m.events("body"))
    assert body == "Body line one.\r\nBody line two.\r\n"
    assert m.events("data")


def test_every_modification_action(server_factory, milter_factory):
    m = milter_factory({"edits": [
        ["addheader", "X-Added", "yes"],
        ["insheader", 0, "X-Top", "first"],
        ["chgheader", "Subject", 1, "changed"],
        ["chgheader", "X-Folded", 1, ""],
        ["addrcpt", "<carol@example.com>"],
        ["delrcpt", "<bob@example.com>"],
        ["chgfrom", "<bounces@example.org>"],
        ["replacebody", "New body.\r\nSecond line.\n"],
    ]})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    send(srv)
    assert wait_for(lambda: mailbox(srv, "carol"), timeout=10)
    got = mailbox(srv, "carol")[0]
    head, _, body = got.partition(b"\r\n\r\n")
    assert body == b"New body.\r\nSecond line.\r\n"
    lines = head.split(b"\r\n")
    assert b"X-Added: yes" in lines
    assert b"Subject: changed" in lines
    assert not any(l.startswith(b"X-Folded") for l in lines)
    assert lines.index(b"X-Top: first") < lines.index(b"From: Alice <alice@example.net>")
    assert b"Return-Path: <bounces@example.org>" in lines or b"bounces@example.org" in head
    time.sleep(1)
    assert mailbox(srv, "bob") == []


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data", "eom"])
def test_reject_and_tempfail_at_each_stage(server_factory, milter_factory, stage):
    m = milter_factory({stage: "reject"})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused,
                        smtplib.SMTPDataError)) as ei:
        send(srv)
    err = ei.value
    code = getattr(err, "smtp_code", None) or list(err.recipients.values())[0][0]
    assert code == 550
    text = str(err)
    assert "5.7.1 Command rejected" in text
    assert "milter-reject: %s" % {"mail": "MAIL", "rcpt": "RCPT", "data": "DATA",
                                   "eom": "END-OF-MESSAGE"}[stage] in srv.log_text()
    m.set_plan({stage: "tempfail"})
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused,
                        smtplib.SMTPDataError)) as ei:
        send(srv)
    assert "4.7.1 Service unavailable - try again later" in str(ei.value)
    assert mailbox(srv) == []


def test_replycode_multiline_and_percent(server_factory, milter_factory):
    m = milter_factory({"mail": "reject", "reply_at": "mail",
                        "reply": ["554", "5.7.0", "no way 100%%", "second line"]})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO c.example.net\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"MAIL FROM:<a@example.net>\r\n")
        l1, l2 = f.readline(), f.readline()
        assert l1 == b"554-5.7.0 no way 100%\r\n"
        assert l2 == b"554 5.7.0 second line\r\n"


def test_discard_accepts_and_drops(server_factory, milter_factory):
    m = milter_factory({"eom": "discard"})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    assert send(srv) == {}
    assert "milter-discard: END-OF-MESSAGE" in srv.log_text()
    time.sleep(1)
    assert mailbox(srv) == []


def test_quarantine_goes_to_hold(server_factory, milter_factory):
    m = milter_factory({"edits": [["quarantine", "looks bad"]]})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    send(srv)
    assert "milter-hold: END-OF-MESSAGE" in srv.log_text()
    assert "looks bad" in srv.log_text()
    held = list((srv.data / "queue" / "hold").iterdir())
    assert any(p.suffix == ".data" for p in held)
    time.sleep(1)
    assert mailbox(srv) == []


def test_connect_reject_persists_to_mail(server_factory, milter_factory):
    m = milter_factory({"connect": "reject"})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"554 mx.example.com ESMTP not accepting connections")
        s.sendall(b"HELO c.example.net\r\n")
        assert f.readline().startswith(b"250 ")
        s.sendall(b"MAIL FROM:<a@example.net>\r\n")
        assert f.readline() == b"550 5.7.1 Command rejected\r\n"


def test_accept_skips_the_rest(server_factory, milter_factory):
    m = milter_factory({"mail": "accept", "edits": [["addheader", "X-Never", "1"]]})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    send(srv)
    assert wait_for(lambda: mailbox(srv), timeout=10)
    assert b"X-Never" not in mailbox(srv)[0]
    assert m.events("rcpt") == [] and m.events("eom") == []


def test_unix_socket_and_two_messages_in_one_session(server_factory, milter_factory):
    m = milter_factory({"edits": [["addheader", "X-Seen", "yes"]]}, unix=True)
    srv = server_factory({"smtpd_milters": "unix:%s" % m.path})
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.ehlo("client.example.net")
        c.sendmail("alice@example.net", ["bob@example.com"], MSG)
        c.rset()
        c.sendmail("alice@example.net", ["bob@example.com"], MSG)
    assert wait_for(lambda: len(mailbox(srv)) == 2, timeout=10)
    assert all(b"X-Seen: yes" in x for x in mailbox(srv))
    # One filter connection carries both (the other connect is the start-up probe).
    assert len(m.events("helo")) == 1 and len(m.events("eom")) == 2


def test_filter_that_does_not_answer_in_time(server_factory, milter_factory):
    m = milter_factory({"sleep_at": "mail", "sleep": 6})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port,
                          "milter_command_timeout": "1s"})
    t0 = time.monotonic()
    with pytest.raises(smtplib.SMTPSenderRefused) as ei:
        send(srv)
    assert time.monotonic() - t0 < 5
    assert ei.value.smtp_code == 451
    assert "timeout while waiting for a reply" in srv.log_text()


def test_tls_and_auth_macros(server_factory, milter_factory):
    from smtpclient import insecure_tls_context
    m = milter_factory({})
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % m.port}, start=False)
    r = srv.cmd("user", "add", "sam", input="a good password\n")
    assert r.returncode == 0, r.stderr
    srv.start()
    # Filters are for smtpd_listen and the submission ports alike, as with Postfix.
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as c:
        c.starttls(context=insecure_tls_context())
        c.login("sam", "a good password")
        c.sendmail("sam@example.com", ["bob@example.com"], MSG)
    assert wait_for(lambda: mailbox(srv), timeout=10)
    helo = m.events("helo")[-1]["macros"]
    assert helo.get("{tls_version}", "").startswith("TLSv1")
    assert helo.get("{cipher}")
    mail = m.events("mail")[-1]["macros"]
    assert mail["{auth_authen}"] == "sam"
    assert mail["{auth_type}"] in ("PLAIN", "LOGIN")


# ---- broken filters ----

class BadMilter:
    """A TCP listener that does what real broken filters do."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.conns = []
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            # One thread per connection: the server's start-up probe is a session too.
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            c.settimeout(5)
            c.recv(65536)  # the OPTNEG
            if self.behaviour == "garbage":
                c.sendall(b"\x00\x00\x00\x05Xjunk" * 3)
            elif self.behaviour == "endless":
                c.sendall(struct.pack(">I", 0x7fffffff) + b"O" + b"x" * 65536)
            elif self.behaviour == "progress":
                # A proper handshake, then "still working" forever.
                c.sendall(struct.pack(">IcIII", 13, b"O", 6, 0, 0))
                c.recv(65536)  # the macros and the CONNECT event
                while not self.stop:
                    c.sendall(struct.pack(">Ic", 1, b"p"))
                    time.sleep(0.2)
            # "silent": never answers
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.t.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("behaviour", ["down", "garbage", "endless", "silent"])
def test_broken_milter_tempfail(server_factory, behaviour):
    bad = None
    if behaviour == "down":
        port = free_port()
    else:
        bad = BadMilter(behaviour)
        port = bad.port
    try:
        srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % port,
                              "milter_connect_timeout": "2s", "milter_command_timeout": "2s"})
        t0 = time.monotonic()
        with pytest.raises(smtplib.SMTPSenderRefused) as ei:
            send(srv)
        assert time.monotonic() - t0 < 10
        assert ei.value.smtp_code == 451
        assert b"4.7.1 Service unavailable - try again later" in ei.value.smtp_error
        assert mailbox(srv) == []
        # The server itself is fine: another session gets its greeting at once.
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=10) as c:
            assert c.noop()[0] == 250
    finally:
        if bad:
            bad.close()


def test_endless_progress_is_bounded(server_factory):
    bad = BadMilter("progress")
    try:
        srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % bad.port,
                              "milter_command_timeout": "1s"}, start=False)
        srv.start(wait=False)
        wait_port(srv.smtpd_port, proc=srv.proc)
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=30) as s:
            f = s.makefile("rb")
            # Progress stretches the 1 s wait, but only to ten timeouts.
            assert f.readline().startswith(b"220 ")
            waited = time.monotonic() - t0
            assert 8 <= waited < 15, waited
            s.sendall(b"HELO c.example.net\r\nMAIL FROM:<a@example.net>\r\n")
            assert f.readline().startswith(b"250 ")
            assert f.readline() == b"451 4.7.1 Service unavailable - try again later\r\n"
    finally:
        bad.close()


@pytest.mark.parametrize("action,expect", [("accept", "delivered"), ("reject", 550),
                                           ("quarantine", "held")])
def test_default_action(server_factory, action, expect):
    port = free_port()
    srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % port,
                          "milter_default_action": action})
    if expect == 550:
        # Postfix: the connect event already meets "550 5.5.0 Service unavailable",
        # so the greeting is 554 and MAIL gets the 550.
        with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"554 mx.example.com ESMTP not accepting")
            s.sendall(b"HELO c.example.net\r\nMAIL FROM:<a@example.net>\r\n")
            assert f.readline().startswith(b"250 ")
            assert f.readline() == b"550 5.5.0 Service unavailable\r\n"
        return
    send(srv)
    if expect == "delivered":
        assert wait_for(lambda: mailbox(srv), timeout=10)
    else:
        held = list((srv.data / "queue" / "hold").iterdir())
        assert any(p.suffix == ".data" for p in held)


def test_per_milter_settings_in_braces(server_factory, milter_factory):
    m = milter_factory({"edits": [["addheader", "X-Second", "ok"]]})
    down = free_port()
    srv = server_factory({
        "smtpd_milters": "{ inet:127.0.0.1:%d, default_action=accept, connect_timeout=1s }, "
                         "inet:127.0.0.1:%d" % (down, m.port)})
    send(srv)
    assert wait_for(lambda: mailbox(srv), timeout=10)
    assert b"X-Second: ok" in mailbox(srv)[0]


def test_bad_milter_setting_is_refused(server_factory):
    srv = server_factory({"smtpd_milters": "{ inet:127.0.0.1:1, bogus=1 }"}, start=False)
    srv.start(wait=False)
    assert wait_for(lambda: srv.proc.poll() is not None, timeout=10)
    assert "bogus=1" in srv.log_text()


# ---- OpenDKIM in signing mode ----

def test_opendkim_signs_and_dkimpy_verifies(server_factory, tmp_path):
    import base64
    import dkim
    d = tmp_path / "odkim"
    d.mkdir()
    key = d / "mail.private"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    port = free_port()
    conf = d / "opendkim.conf"
    conf.write_text("\n".join([
        "Mode s", "Domain example.org", "Selector mail", "KeyFile %s" % key,
        "Socket inet:%d@127.0.0.1" % port, "Background no", "RequireSafeKeys false",
        "Canonicalization relaxed/simple", "PidFile %s" % (d / "pid"),
        "InternalHosts 127.0.0.1", "Syslog no", ""]))
    log = open(d / "log", "wb")
    od = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x", str(conf)], stdout=log,
                          stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc=od)
        srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % port})
        msg = MSG.replace(b"alice@example.net", b"alice@example.org")
        send(srv, sender="alice@example.org", msg=msg)
        assert wait_for(lambda: mailbox(srv), timeout=10)
        got = mailbox(srv)[0]
        assert b"DKIM-Signature:" in got
        assert b"d=example.org" in got and b"s=mail" in got

        def dnsfunc(name, timeout=5):
            return txt if name == b"mail._domainkey.example.org." else None
        assert dkim.verify(got, dnsfunc=dnsfunc)
        assert not dkim.verify(got.replace(b"Body line one", b"Body line 1"), dnsfunc=dnsfunc)
    finally:
        od.terminate()
        od.wait(timeout=10)
        log.close()


# ---- rspamd's milter (proxy worker, milter = yes; no redis needed for GTUBE) ----

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_rspamd_rejects_gtube(server_factory, tmp_path):
    import os
    d = tmp_path / "rspamd"
    d.mkdir()
    port = free_port()
    # A private configuration: no modules (filters = ""), DNS pointed at a
    # closed loopback port, so nothing leaves the machine.
    (d / "rspamd.conf").write_text("""
options {
    pidfile = "%(d)s/rspamd.pid";
    filters = "";
    dns { nameserver = ["127.0.0.1:9"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "%(d)s/rspamd.log"; level = "info"; }
actions { reject = 15; add_header = 6; greylist = 4; }
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:%(port)d";
    milter = yes;
    timeout = 120s;
    count = 1;
    upstream "local" { default = yes; self_scan = yes; }
}
""" % {"d": d, "port": port})
    args = ["rspamd", "-f", "-c", str(d / "rspamd.conf"), "--var", "DBDIR=%s" % d,
            "--var", "RUNDIR=%s" % d, "--var", "LOGDIR=%s" % d]
    if os.geteuid() == 0:
        args += ["-i", "-u", "root", "-g", "root"]
    log = open(d / "out", "wb")
    rs = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Loading rspamd's tables takes a while on a busy machine.
        wait_port(port, proc=rs, timeout=90)
        srv = server_factory({"smtpd_milters": "inet:127.0.0.1:%d" % port})
        spam = MSG + GTUBE + b"\r\n"
        with pytest.raises(smtplib.SMTPDataError) as ei:
            send(srv, msg=spam)
        assert ei.value.smtp_code == 554
        assert b"5.7.1 Gtube pattern" in ei.value.smtp_error
        assert "milter-reject: END-OF-MESSAGE" in srv.log_text()
        send(srv)
        assert wait_for(lambda: mailbox(srv), timeout=10)
        assert len(mailbox(srv)) == 1
    finally:
        os.killpg(rs.pid, 15)
        try:
            rs.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(rs.pid, 9)
            rs.wait(timeout=10)
        log.close()


# ---- non_smtpd_milters: sendmail mail through pickup ----

def test_non_smtpd_milter_edits_sendmail_mail(server_factory, milter_factory):
    m = milter_factory({"edits": [["addheader", "X-Signed-By", "test-milter"],
                                  ["addrcpt", "<carol@example.com>"]]})
    srv = server_factory({"non_smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    r = srv.cmd("sendmail", "-f", "alice@example.com", "bob@example.com",
                input="Subject: local\n\nfrom the command line\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: mailbox(srv) and mailbox(srv, "carol"), timeout=15)
    assert b"X-Signed-By: test-milter" in mailbox(srv)[0]
    conn = m.events("connect")[0]
    assert conn["hostname"] == "localhost" and conn["addr"] == "127.0.0.1"
    assert m.events("helo")[0]["helo"] == "localhost"
    assert m.events("mail")[0]["sender"] == "<alice@example.com>"
    assert [e["rcpt"] for e in m.events("rcpt")] == ["<bob@example.com>"]
    assert m.events("eom")[0]["macros"]["i"]


def test_non_smtpd_milter_reject_bounces_tempfail_waits(server_factory, milter_factory):
    m = milter_factory({"eom": "reject"})
    srv = server_factory({"non_smtpd_milters": "inet:127.0.0.1:%d" % m.port})
    srv.cmd("sendmail", "-f", "alice@example.com", "bob@example.com",
            input="Subject: refused\n\nno\n", check=True)
    # The sender (a local user here) gets the bounce with the filter's reply.
    assert wait_for(lambda: mailbox(srv, "alice"), timeout=15)
    dsn = mailbox(srv, "alice")[0]
    assert b"5.7.1" in dsn and b"Command rejected" in dsn
    assert mailbox(srv) == []
    assert "milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]" in srv.log_text()
    # A temporary refusal leaves the message in maildrop/ for later.
    m.set_plan({"eom": "tempfail"})
    srv.cmd("sendmail", "-f", "alice@example.com", "bob@example.com",
            input="Subject: later\n\nwait\n", check=True)
    assert wait_for(lambda: "4.7.1 Service unavailable" in srv.log_text(), timeout=15)
    time.sleep(1)
    assert list((srv.data / "queue" / "maildrop").iterdir())
    assert mailbox(srv) == []
