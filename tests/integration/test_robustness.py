"""Defects from the fault campaign (issue 10) other than the power cut
(test_powercut.py): long pipelined recipient lists, client bytes that are
not UTF-8 in the headers we write, and a full disk."""
import socket
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
