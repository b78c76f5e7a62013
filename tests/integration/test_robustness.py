"""Defects from the fault campaign (issue 10) other than the power cut
(test_powercut.py): long pipelined recipient lists, client bytes that are
not UTF-8 in the headers we write, and a full disk."""
import os
import socket
import subprocess
import time

import pytest

from conftest import wait_for
from smtppeer import Peer


def read_replies(sock, want, timeout=30):
    """Reads reply lines (slowly: small reads) until want final replies
    (code and space) or EOF; returns (codes, error) where error is the
    exception that ended the reading early (a reset), or None."""
    data, codes = b"", []
    deadline = time.monotonic() + timeout
    while len(codes) < want and time.monotonic() < deadline:
        try:
            chunk = sock.recv(256)
        except OSError as e:
            return codes, e
        if not chunk:
            break
        data += chunk
        while b"\r\n" in data:
            line, data = data.split(b"\r\n", 1)
            if line[3:4] == b" ":
                codes.append(int(line[:3]))
        time.sleep(0.001)  # a slow reader
    return codes, None


def pipelined_session(port, nrcpt, domain="remote.test"):
    """EHLO, then MAIL, nrcpt RCPTs and DATA in one write; replies read
    only after a pause, slowly, through a small receive buffer. Returns the
    codes of MAIL, each RCPT and DATA, the error that ended reading, and
    the socket (still open)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    assert read_replies(sock, 1)[0] == [220]
    sock.sendall(b"EHLO client.example.com\r\n")
    assert read_replies(sock, 1)[0] == [250]
    cmds = [b"MAIL FROM:<sender@example.com>\r\n"]
    cmds += [b"RCPT TO:<r%d@%s>\r\n" % (i, domain.encode()) for i in range(nrcpt)]
    cmds.append(b"DATA\r\n")
    sock.sendall(b"".join(cmds))
    time.sleep(1.0)  # the client is busy: the replies pile up
    codes, err = read_replies(sock, nrcpt + 2)
    return codes, err, sock


@pytest.mark.parametrize("nrcpt", [1020, 1100])
def test_recipient_overshoot_is_not_an_error(server_factory, nrcpt):
    """Postfix's smtpd_recipient_overshoot_limit: the 452 4.5.3 replies for
    the first 1,000 recipients beyond smtpd_recipient_limit do not count
    toward smtpd_hard_error_limit; the transaction goes on to DATA with
    1,000 recipients, which all reach the relay."""
    with Peer() as relay:
        srv = server_factory({"relayhost": "[127.0.0.1]:%d" % relay.port})
        codes, err, sock = pipelined_session(srv.smtpd_port, nrcpt)
        with sock:
            assert err is None, "reset after %d replies: %s" % (len(codes), err)
            assert codes[0] == 250
            assert codes[1:1001] == [250] * 1000
            assert codes[1001:nrcpt + 1] == [452] * (nrcpt - 1000)
            assert codes[-1] == 354, codes[-5:]
            sock.sendall(b"Subject: many\r\n\r\nhello\r\n.\r\nQUIT\r\n")
            assert read_replies(sock, 2)[0] == [250, 221]
        assert wait_for(lambda: len(relay.messages) >= 1, timeout=30), srv.log_text()[-2000:]
        assert sum(len(m.rcpt_tos) for m in relay.messages) == 1000
        assert "too many errors" not in srv.log_text()


def test_beyond_overshoot_errors_count_and_close_without_reset(server_factory):
    """Past the overshoot limit (0 here) each 452 is an error again, and
    the session ends with 421 4.7.0. A slow reader still gets all the 1,000
    replies queued before that 421, and the 421, then an orderly end: not
    a reset that throws away replies we still had to send."""
    srv = server_factory({"smtpd_recipient_overshoot_limit": "0"})
    codes, err, sock = pipelined_session(srv.smtpd_port, 1100)
    with sock:
        assert err is None, "reset after %d replies: %s" % (len(codes), err)
        assert codes == [250] + [250] * 1000 + [452] * 20 + [421], (len(codes), codes[-3:])
        assert sock.recv(100) == b""  # the end is a FIN, after the last reply
    assert wait_for(lambda: "too many errors after RCPT" in srv.log_text())


def test_helo_bytes_that_are_not_text_become_question_marks(server):
    """EHLO \\xff\\xfe.example: Received: (and the log) say ??.example, as
    Postfix writes it; well-formed UTF-8 in the name stays as it is."""
    for helo, shown in ((b"\xff\xfe.example", b"??.example"),
                        ("m\u00e4il.example".encode(), "m\u00e4il.example".encode())):
        with socket.create_connection(("127.0.0.1", server.smtpd_port), timeout=30) as sock:
            assert read_replies(sock, 1)[0] == [220]
            sock.sendall(b"EHLO " + helo + b"\r\n")
            assert read_replies(sock, 1)[0] == [250]
            sock.sendall(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<sink@example.com>\r\nDATA\r\n")
            assert read_replies(sock, 3)[0] == [250, 250, 354]
            sock.sendall(b"Subject: helo\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            assert read_replies(sock, 2)[0] == [250, 221]
    assert wait_for(lambda: len(server.messages("example.com", "sink")) == 2, timeout=30)
    received = []
    for f in server.messages("example.com", "sink"):
        text = f.read_bytes()
        received += [l for l in text.split(b"\r\n") if l.startswith(b"Received: from ")]
    assert sorted(received) == sorted([b"Received: from ??.example (localhost [127.0.0.1])",
                                       "Received: from m\u00e4il.example (localhost "
                                       "[127.0.0.1])".encode()]), received
    assert b"\xff" not in server.log.read_bytes()


@pytest.fixture
def small_queue(tmp_path):
    """A 1 MB tmpfs for queue_directory (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    qdir = tmp_path / "smallqueue"
    qdir.mkdir()
    os.chmod(tmp_path, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(qdir)],
                   check=True)
    yield qdir
    subprocess.run(["umount", "-l", str(qdir)], check=False)


def smtp_dialogue(port, lines):
    """Sends each line and returns the final reply codes, one per line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert read_replies(sock, 1)[0] == [220]
        codes = []
        for line in lines:
            sock.sendall(line)
            got, err = read_replies(sock, 1)
            assert err is None and got, (line, err)
            codes += got
        return codes


def test_header_fixup_that_finds_the_disk_full_is_refused(server_factory, small_queue):
    """Mail we originate gets Date and Message-ID added at spool entry (a
    copy of the message). With no room for that copy the message is refused
    with 452 4.3.1 and removed, not accepted without its Date."""
    srv = server_factory({"queue_directory": str(small_queue), "queue_minfree": "1",
                          "message_size_limit": "4000000"})
    body = b"Subject: no date\r\n\r\n" + (b"z" * 998 + b"\r\n") * 600  # 600 KB: fits once
    codes = smtp_dialogue(srv.smtpd_port, [
        b"EHLO client.example.com\r\n", b"MAIL FROM:<a@example.com>\r\n",
        b"RCPT TO:<sink@example.com>\r\n", b"DATA\r\n", body + b".\r\n",
        b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<sink@example.com>\r\n", b"DATA\r\n",
        b"Subject: small\r\n\r\nhi\r\n.\r\n", b"QUIT\r\n"])
    assert codes == [250, 250, 250, 354, 452, 250, 250, 354, 250, 221], codes
    assert "cannot add the missing header fields: No space left on device; " \
           "the message is refused" in srv.log_text()
    # Only the small message arrives, with the Date it was given.
    assert wait_for(lambda: len(srv.messages("example.com", "sink")) == 1, timeout=30)
    time.sleep(1)
    msgs = srv.messages("example.com", "sink")
    assert len(msgs) == 1 and b"\r\nDate: " in msgs[0].read_bytes()
    assert not os.listdir(small_queue / "incoming")
    assert not os.listdir(small_queue / "active")


def test_queue_minfree_refuses_mail_from_early(server_factory, small_queue):
    """452 4.3.1 at MAIL FROM when the queue file system has less free than
    queue_minfree (plus a declared SIZE); by default 1.5 x
    message_size_limit, which a 1 MB filesystem never has."""
    srv = server_factory({"queue_directory": str(small_queue)})  # 10 MB limit: 15 MB needed
    assert smtp_dialogue(srv.smtpd_port, [b"EHLO c.example\r\n", b"MAIL FROM:<a@example.com>\r\n"]) \
        == [250, 452]
    assert "452 4.3.1 Insufficient system storage" in srv.log_text()
    srv.stop()
    srv.settings.update({"queue_minfree": "500000", "message_size_limit": "600000"})
    srv.write_config()
    srv.start()
    assert smtp_dialogue(srv.smtpd_port, [
        b"EHLO c.example\r\n", b"MAIL FROM:<a@example.com>\r\n", b"RSET\r\n",
        b"MAIL FROM:<a@example.com> SIZE=400000\r\n", b"RSET\r\n",
        b"MAIL FROM:<a@example.com> SIZE=590000\r\n"]) == [250, 250, 250, 250, 250, 452]
    # Fill the disk from outside: refused (once the cached figure is a second old) ...
    filler = small_queue / "filler"
    with open(filler, "wb") as f:
        f.write(b"f" * 700000)
    time.sleep(1.1)
    assert smtp_dialogue(srv.smtpd_port, [b"EHLO c.example\r\n",
                                          b"MAIL FROM:<a@example.com>\r\n"]) == [250, 452]
    # ... and accepted again once there is room, with nothing to restart.
    filler.unlink()
    time.sleep(1.1)
    assert smtp_dialogue(srv.smtpd_port, [b"EHLO c.example\r\n",
                                          b"MAIL FROM:<a@example.com>\r\n"]) == [250, 250]


def test_dkim_signature_that_finds_the_disk_full_is_refused(server_factory, small_queue):
    """With DKIM keys, mail we originate is signed at spool entry; with no
    room for the signed copy it is refused with 452 4.3.1, never queued
    unsigned. A message that fits is signed and verifies with dkimpy."""
    import dkim
    from test_dkim_sign_path import dnsfunc_for, parse_zone_lines
    srv = server_factory({"queue_directory": str(small_queue), "queue_minfree": "1",
                          "message_size_limit": "4000000", "dkim_domains": "rsa.example.com",
                          "dkim_algorithm": "rsa"}, start=False)
    r = srv.cmd("dkim", "keygen", "rsa.example.com", "--algorithm", "rsa")
    assert r.returncode == 0, r.stderr
    keys = parse_zone_lines(r.stdout)
    srv.start()
    head = (b"From: <alice@rsa.example.com>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            b"Message-ID: <%s@rsa.example.com>\r\nSubject: %s\r\n\r\n")
    big = head % (b"big", b"big") + (b"z" * 998 + b"\r\n") * 600
    small = head % (b"small", b"small") + b"hello\r\n"
    codes = smtp_dialogue(srv.smtpd_port, [
        b"EHLO client.example.com\r\n", b"MAIL FROM:<alice@rsa.example.com>\r\n",
        b"RCPT TO:<sink@example.com>\r\n", b"DATA\r\n", big + b".\r\n",
        b"MAIL FROM:<alice@rsa.example.com>\r\n", b"RCPT TO:<sink@example.com>\r\n",
        b"DATA\r\n", small + b".\r\n", b"QUIT\r\n"])
    assert codes == [250, 250, 250, 354, 452, 250, 250, 354, 250, 221], codes
    assert "cannot DKIM-sign the message or add its missing header fields: " \
           "No space left on device; the message is refused" in srv.log_text()
    assert wait_for(lambda: len(srv.messages("example.com", "sink")) == 1, timeout=30)
    time.sleep(1)
    msgs = srv.messages("example.com", "sink")
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert b"Subject: small" in data
    assert dkim.DKIM(data, minkey=1024).verify(dnsfunc=dnsfunc_for(keys))


def test_close_without_reset_over_tls_too(server_factory):
    """The same 421 after too many errors, inside STARTTLS: the slow reader
    gets every reply and the 421, then the end, not a reset."""
    import ssl
    from smtpclient import insecure_tls_context
    srv = server_factory({"smtpd_recipient_overshoot_limit": "0"})
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", srv.smtpd_port))
    assert read_replies(raw, 1)[0] == [220]
    raw.sendall(b"EHLO client.example.com\r\n")
    assert read_replies(raw, 1)[0] == [250]
    raw.sendall(b"STARTTLS\r\n")
    assert read_replies(raw, 1)[0] == [220]
    sock = insecure_tls_context().wrap_socket(raw, server_hostname="mx.example.com")
    with sock:
        sock.sendall(b"EHLO client.example.com\r\n")
        assert read_replies(sock, 1)[0] == [250]
        cmds = [b"MAIL FROM:<sender@example.com>\r\n"]
        cmds += [b"RCPT TO:<r%d@remote.test>\r\n" % i for i in range(1100)]
        sock.sendall(b"".join(cmds + [b"DATA\r\n"]))
        time.sleep(1.0)
        codes, err = read_replies(sock, 1102)
        assert err is None, "reset after %d replies: %s" % (len(codes), err)
        assert codes == [250] + [250] * 1000 + [452] * 20 + [421], (len(codes), codes[-3:])
