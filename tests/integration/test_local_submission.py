"""The local submission boundary (docs/submission.md, "Local submission
boundary"), attacked the way a local user would: the real server runs as
root (workers as mail_owner) and the unprivileged user `nobody` does the
local part through runuser. Each test fails against a build without the
boundary (a world-writable maildrop/ that the server trusts).
"""
import ctypes
import email
import email.policy
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time

import pytest

from conftest import BIN, POSTDROP, free_port, wait_for
from dnsserver import DNSServer
from smtppeer import Peer

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="needs root and runuser to act as another local user")

NOBODY = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else -1


def as_user(user, args, input=None, timeout=60):
    """Runs args as user (runuser: no password, no login shell needed)."""
    return subprocess.run(["runuser", "-u", user, "--"] + list(args), input=input,
                          capture_output=True, timeout=timeout,
                          text=isinstance(input, str) or input is None)


def nobody_sendmail(srv, args, text):
    return as_user("nobody", [BIN, "-c", str(srv.cfg), "sendmail"] + list(args), input=text)


def maildrop(srv):
    return srv.data / "queue" / "maildrop"


def waiting(srv):
    return [p for p in maildrop(srv).iterdir() if not p.name.startswith(".")]


def corrupt(srv):
    d = srv.data / "queue" / "corrupt"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def read_msg(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def envelope_file(sender, rcpts, body=b"Subject: x\r\n\r\nbody\r\n", raw_sender=None):
    """A maildrop file as sendmail writes it (hongyan's envelope records),
    with the sender field given raw when raw_sender is set (an attacker's)."""
    def esc(s):
        return "".join(c if 0x20 < ord(c) < 0x7f and c != "%" else "%%%02X" % ord(c) for c in s)
    lines = ["HONGYAN-ENVELOPE 1", "I =", "T %d" % int(time.time()),
             "S %s" % (raw_sender if raw_sender is not None else esc(sender)), "E -",
             "F 0 0 0 0 0", "N 0 0"]
    lines += ["R %s - 0" % esc(r) for r in rcpts]
    env = ("\n".join(lines) + "\n").encode()
    return b"HONGYAN-MAILDROP 1 %d\n" % len(env) + env + body


def test_nobody_cannot_read_or_write_the_maildrop(server_factory):
    srv = server_factory(start=False)
    srv.start()
    srv.stop()
    r = srv.cmd("sendmail", "-f", "root@example.com", "bob@example.com",
                input="Subject: secret\n\nthe root password is hunter2\n")
    assert r.returncode == 0, r.stderr
    files = waiting(srv)
    assert len(files) == 1
    st = maildrop(srv).stat()
    assert stat.S_IMODE(st.st_mode) == 0o1730
    assert st.st_gid == __import__("grp").getgrnam("hongyan-drop").gr_gid
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o640
    # Another user can neither read the queued message by its name ...
    probe = ("import sys\ntry:\n    print(open(sys.argv[1]).read())\n"
             "except OSError as e:\n    print('DENIED', e.errno)\n")
    r = as_user("nobody", [sys.executable, "-c", probe, str(files[0])])
    assert "hunter2" not in r.stdout and "DENIED" in r.stdout, r.stdout + r.stderr
    # ... nor drop a file of its own, with an envelope the server would trust.
    forged = str(maildrop(srv) / "FORGED")
    probe = ("import sys\ntry:\n    open(sys.argv[1], 'x').write('x')\n    print('WROTE')\n"
             "except OSError as e:\n    print('DENIED', e.errno)\n")
    r = as_user("nobody", [sys.executable, "-c", probe, forged])
    assert "WROTE" not in r.stdout and "DENIED" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(forged)


def test_sendmail_as_nobody_while_down_names_the_uid(server_factory):
    srv = server_factory(start=False)
    srv.start()
    srv.stop()
    r = nobody_sendmail(srv, ["bob@example.com"], "Subject: while down\n\nqueued\n")
    assert r.returncode == 0, r.stderr
    assert len(waiting(srv)) == 1
    srv.start()
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    m = read_msg(srv.messages("example.com", "bob")[0])
    assert m["Return-Path"] == "<nobody@mx.example.com>"
    received = m.get_all("Received")
    # Postfix's shape: "by HOST (Postfix, from userid 1000) id QUEUEID; DATE".
    assert re.match(r"by mx\.example\.com \(hongyan, from userid %d\)\s+id [0-9A-V]+; \w{3}, "
                    % NOBODY, received[-1]), received
    qid = re.search(r"id ([0-9A-V]+);", received[-1]).group(1)
    assert "%s: uid=%d from=<nobody@mx.example.com>" % (qid, NOBODY) in srv.log_text()


def test_the_helper_records_the_real_uid_not_the_claimed_one(server_factory):
    srv = server_factory()
    # nobody calls the helper directly and claims uid 0 inside the file.
    data = b"HONGYAN-POSTDROP uid=0\n" + envelope_file("root@example.com", ["bob@example.com"])
    r = as_user("nobody", [POSTDROP, str(srv.data / "queue")], input=data)
    assert r.returncode == 0, r.stderr
    # The claim is sendmail's part now, which is not a maildrop file: quarantined.
    assert wait_for(lambda: corrupt(srv), timeout=10)
    assert "bad maildrop" in srv.log_text() or "not a maildrop file" in srv.log_text()
    # Without the claim: delivered, and named by the real uid.
    r = as_user("nobody", [POSTDROP, str(srv.data / "queue")],
                input=envelope_file("root@example.com", ["bob@example.com"]))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    m = read_msg(srv.messages("example.com", "bob")[0])
    assert "from userid %d)" % NOBODY in m["Received"]


def test_crlf_in_an_envelope_never_reaches_the_relay(server_factory, tmp_path):
    with Peer(tmp=tmp_path) as relay, DNSServer({}) as dns:
        srv = server_factory(extra={"relayhost": "[127.0.0.1]:%d" % relay.port,
                                    "dns_resolver": dns.address})
        # sendmail -f refuses it outright, with EX_USAGE.
        r = nobody_sendmail(srv, ["-f", "a@example.com\r\nRCPT TO:<evil@victim.test>",
                                  "x@remote.test"], "Subject: x\n\nx\n")
        assert r.returncode == 64 and "bad sender address" in r.stderr, r.stderr
        # (An address list drops bare line breaks; inside quotes they are kept.)
        r = nobody_sendmail(srv, ['"x\r\nRSET"@remote.test'], "Subject: x\n\nx\n")
        assert r.returncode == 64 and "bad recipient address" in r.stderr, r.stderr
        # Past sendmail, straight to the helper: quarantined at pickup.
        evil = envelope_file(None, ["x@remote.test"],
                             raw_sender="a@example.com%0D%0ARCPT%20TO:<evil@victim.test>")
        r = as_user("nobody", [POSTDROP, str(srv.data / "queue")], input=evil)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: corrupt(srv), timeout=10)
        assert re.search(r"maildrop/\w+: bad sender address; moved to corrupt/", srv.log_text())
        # A clean message still goes out, and the relay never saw the smuggled command.
        r = nobody_sendmail(srv, ["-f", "a@example.com", "x@remote.test"], "Subject: ok\n\nok\n")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: relay.messages, timeout=15)
        time.sleep(0.5)
        assert [m.rcpt_tos for m in relay.messages] == [["x@remote.test"]]
        assert all("evil" not in f for f, _ in relay.mail_froms)


def test_bare_cr_and_lf_become_crlf(server_factory, tmp_path):
    with Peer(tmp=tmp_path) as relay, DNSServer({}) as dns:
        srv = server_factory(extra={"relayhost": "[127.0.0.1]:%d" % relay.port,
                                    "dns_resolver": dns.address})
        body = b"Subject: smuggle\r\n\r\nline one\nline two\rMAIL FROM:<x@y>\n.\rline four\r\n"
        r = as_user("nobody", [POSTDROP, str(srv.data / "queue")],
                    input=envelope_file("a@example.com", ["x@remote.test"], body=body))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: relay.messages, timeout=15)
        data = relay.messages[0].data
        data = data if isinstance(data, bytes) else data.encode()
        assert re.search(rb"\r(?!\n)|(?<!\r)\n", data.replace(b"\r\n", b"")) is None
        assert b"line one\r\nline two\r\nMAIL FROM:<x@y>\r\n.\r\nline four" in data.replace(
            b"\r\n..", b"\r\n.")
        assert len(relay.messages) == 1


def test_recipients_deduplicated_and_capped(server_factory):
    srv = server_factory(extra={"smtpd_recipient_limit": "5"})
    r = nobody_sendmail(srv, ["a%d@example.com" % i for i in range(6)], "Subject: x\n\nx\n")
    assert r.returncode == 64 and "too many recipients" in r.stderr, r.stderr
    six = envelope_file("a@example.com", ["a%d@example.com" % i for i in range(6)])
    r = as_user("nobody", [POSTDROP, str(srv.data / "queue")], input=six)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: "too many recipients (6, smtpd_recipient_limit is 5)"
                    in srv.log_text(), timeout=10)
    r = nobody_sendmail(srv, ["bob@example.com", "Bob@Example.COM", "bob@example.com"],
                        "Subject: once\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    assert re.search(r"from=<nobody@mx\.example\.com>, size=\d+, nrcpt=1 ", srv.log_text())
    time.sleep(0.5)
    assert len(srv.messages("example.com", "bob")) == 1


def test_authorized_submit_users(server_factory):
    srv = server_factory(extra={"authorized_submit_users": "!nobody, static:anyone"})
    r = nobody_sendmail(srv, ["bob@example.com"], "Subject: x\n\nx\n")
    assert r.returncode == 77, r.stderr
    assert "User nobody(%d) is not allowed to submit mail" % NOBODY in r.stderr
    r = as_user("nobody", [POSTDROP, str(srv.data / "queue")],
                input=envelope_file("a@example.com", ["bob@example.com"]))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: "uid=%d (nobody) is not allowed by authorized_submit_users; moved "
                    "to corrupt/" % NOBODY in srv.log_text(), timeout=10)
    r = srv.cmd("sendmail", "bob@example.com", input="Subject: root may\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    assert read_msg(srv.messages("example.com", "bob")[0])["Subject"] == "root may"


def test_only_authorized_flush_users_reset_the_backoff(server_factory):
    dead = free_port()
    with DNSServer({}) as dns:
        srv = server_factory(extra={"relayhost": "[127.0.0.1]:%d" % dead,
                                    "dns_resolver": dns.address,
                                    "authorized_flush_users": "root",
                                    "minimal_backoff_time": "300s",
                                    "maximal_backoff_time": "600s",
                                    "queue_run_delay": "300s"})
        r = srv.cmd("sendmail", "-f", "a@example.com", "far@remote.test",
                    input="Subject: x\n\nx\n")
        assert r.returncode == 0, r.stderr

        def attempts():
            return len(re.findall(r"to=<far@remote\.test>.*status=deferred", srv.log_text()))
        assert wait_for(lambda: attempts() == 1, timeout=15)
        r = as_user("nobody", [BIN, "-c", str(srv.cfg), "sendmail", "-q"])
        assert r.returncode == 77 and "not allowed to flush the mail queue" in r.stderr, r.stderr
        # Past sendmail, straight to the helper: the server refuses it by uid.
        r = as_user("nobody", [POSTDROP, "-f", str(srv.data / "queue")])
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: "flush request from uid=%d (nobody) refused" % NOBODY
                        in srv.log_text(), timeout=10)
        time.sleep(1.5)
        assert attempts() == 1
        # Root's flush does reset it.
        r = srv.cmd("sendmail", "-q")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: attempts() == 2, timeout=15)


def greets(port, timeout=5.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(100).startswith(b"220")
    except OSError:
        return False


# Swaps NAME and a FIFO under one name (renameat2 RENAME_EXCHANGE) for a
# bounded time while poking the server, the race that blocked the loop.
RACE = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
d, fifo_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
a, b = os.path.join(d, "RACE"), os.path.join(d, "RACEFIFO")
AT_FDCWD, RENAME_EXCHANGE = -100, 2
end, swaps, made = time.monotonic() + seconds, 0, 0
while time.monotonic() < end:
    try:
        # Pickup takes both aside as they are found: put them back.
        if not os.path.lexists(a):
            open(a, "w").write("HONGYAN-MAILDROP 1 1\n\n"); made += 1
        if not os.path.lexists(b):
            os.mkfifo(b); made += 1
    except OSError as e:
        if made == 0:
            print("DENIED", e.errno, e.filename); sys.exit(0)
        continue  # lost a race with pickup's quarantine: try again
    for _ in range(20):
        libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE)
        swaps += 1
    try:
        fd = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"W\n"); os.close(fd)
    except OSError:
        pass
print("SWAPS", swaps, "MADE", made)
"""


def test_a_fifo_swapped_into_the_maildrop_does_not_stall_the_server(server_factory):
    srv = server_factory()
    queue = srv.data / "queue"
    args = [sys.executable, "-c", RACE, str(maildrop(srv)), str(queue / "public" / "flush"), "4"]
    # nobody cannot even try it now (the race then runs as mail_owner, a
    # compromised worker); on a world-writable maildrop nobody can, and the
    # loop must survive either way.
    probe = as_user("nobody", [sys.executable, "-c",
                               "import os,sys; os.mkfifo(sys.argv[1]); os.unlink(sys.argv[1])",
                               str(maildrop(srv) / ".probe")])
    nobody_can = probe.returncode == 0
    race = subprocess.Popen(["runuser", "-u", "nobody" if nobody_can else "hongyan", "--"] + args,
                            stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert greets(srv.smtpd_port), "the server stopped answering"
            time.sleep(0.2)
    finally:
        out, _ = race.communicate(timeout=30)
    assert "SWAPS" in out
    # Whatever pickup saw was taken aside, and mail still flows.
    r = srv.cmd("sendmail", "bob@example.com", input="Subject: after\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    assert greets(srv.smtpd_port)
    assert not nobody_can, "nobody could put a FIFO into the maildrop"


class RawPeer:
    """A minimal SMTP server on a raw socket that keeps the DATA bytes exactly
    as they came off the wire (aiosmtpd would split and rejoin lines)."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.data = []
        self.commands = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(20)
        with conn:
            conn.sendall(b"220 raw.test ESMTP\r\n")
            buf = b""
            while True:
                while b"\r\n" not in buf:
                    more = conn.recv(65536)
                    if not more:
                        return
                    buf += more
                line, buf = buf.split(b"\r\n", 1)
                self.commands.append(line)
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go\r\n")
                    while b"\r\n.\r\n" not in buf:
                        more = conn.recv(65536)
                        if not more:
                            return
                        buf += more
                    body, buf = buf.split(b"\r\n.\r\n", 1)
                    self.data.append(body + b"\r\n")
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                elif verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 raw.test\r\n")
                else:
                    conn.sendall(b"250 ok\r\n")

    def close(self):
        self.sock.close()


def test_the_client_never_sends_a_bare_cr_or_lf(server_factory):
    """Defence in depth: a queue file damaged to hold bare CR/LF (here by
    root's hand) still goes out with CRLF only and no early end of data."""
    import smtplib
    peer = RawPeer()
    try:
        with DNSServer({}) as dns:
            srv = server_factory(extra={"relayhost": "[127.0.0.1]:%d" % free_port(),
                                        "dns_resolver": dns.address,
                                        "minimal_backoff_time": "300s",
                                        "maximal_backoff_time": "600s"})
            with smtplib.SMTP("127.0.0.1", srv.smtpd_port) as c:
                c.sendmail("a@example.com", ["far@remote.test"],
                           b"Subject: damaged\r\n\r\nXX\r\nQQ\r\nYY\r\nZZ\r\n")
            assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=15)
            active = srv.data / "queue" / "active"
            data = next(active.glob("*.data"))
            raw = data.read_bytes()
            # Same size, so the commit record still matches: "\r\nQ" -> "\r.\r", "\r\nZ" -> "\n.\n".
            damaged = raw.replace(b"XX\r\nQQ", b"XX\r.\rQ").replace(b"YY\r\nZZ", b"YY\n.\nZ")
            assert len(damaged) == len(raw) and damaged != raw
            data.write_bytes(damaged)
            srv.settings["relayhost"] = "[127.0.0.1]:%d" % peer.port
            srv.reload()
            time.sleep(1)
            assert srv.cmd("queue", "flush").returncode == 0
            assert wait_for(lambda: peer.data, timeout=20)
            body = peer.data[0]
            assert re.search(rb"\r(?!\n)|(?<!\r)\n", body) is None, body
            assert b"XX\r\n..\r\nQ" in body and b"YY\r\n..\r\nZ" in body, body
            assert len(peer.data) == 1
            assert not any(c.startswith(b"Q") and c != b"QUIT" for c in peer.commands)
    finally:
        peer.close()


def test_what_pickup_cannot_take_is_set_aside_once(server_factory):
    """Files that are not one readable regular file go to corrupt/ with the
    reason, once; the mail behind them still flows."""
    srv = server_factory(start=False)
    srv.start()
    srv.stop()
    drop = maildrop(srv)
    unreadable = drop / "UNREADABLE"
    unreadable.write_bytes(envelope_file("a@example.com", ["bob@example.com"]))
    os.chmod(unreadable, 0)
    os.mkfifo(drop / "FIFO")
    os.symlink("/etc/shadow", drop / "LINK")
    other = srv.tmp / "outside"
    other.write_bytes(envelope_file("a@example.com", ["bob@example.com"]))
    os.link(other, drop / "HARDLINK")
    srv.start()
    r = srv.cmd("sendmail", "bob@example.com", input="Subject: behind them\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    assert wait_for(lambda: len(corrupt(srv)) == 4, timeout=10), corrupt(srv)
    log = srv.log_text()
    assert "maildrop/UNREADABLE: cannot open: Permission denied; moved to corrupt/" in log
    assert "maildrop/FIFO: not a regular file; moved to corrupt/" in log
    assert "maildrop/LINK: cannot open: a symbolic link; moved to corrupt/" in log
    assert "maildrop/HARDLINK: has more than one link; moved to corrupt/" in log
    time.sleep(1.5)
    assert log.count("moved to corrupt/") == srv.log_text().count("moved to corrupt/") == 4
    assert len(srv.messages("example.com", "bob")) == 1
