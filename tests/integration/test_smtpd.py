"""The SMTP server end to end: real clients (smtplib, swaks, raw sockets for
BDAT and smuggling) against the real binary, with the Maildir checked byte
for byte."""
import re
import shutil
import smtplib
import socket
import subprocess

import pytest

from smtpclient import RawClient
from conftest import wait_for

MSG = (b"From: Alice <alice@sender.example>\r\n"
       b"To: u@example.com\r\n"
       b"Subject: hello\r\n"
       b"Message-ID: <m1@sender.example>\r\n"
       b"\r\n"
       b"Body line one.\r\n"
       b".A line that starts with a dot.\r\n"
       b"..Two dots.\r\n"
       b"\r\n"
       b"Last line.\r\n")

RECEIVED = re.compile(
    rb"Received: from (\S+) \(localhost \[127\.0\.0\.1\]\)\r\n"
    rb"\tby mx\.example\.com \(hongyan\) with (\w+) id (\w+)"
    rb"(?:\r\n\tfor <([^>]+)>)?; [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n")




def greet(port, ehlo="client.example"):
    c = RawClient(port)
    code, _, _ = c.reply()
    assert code == 220
    code, _, lines = c.cmd("EHLO " + ehlo)
    assert code == 250
    return c, lines


def delivered(srv, local="u", domain="example.com", count=1):
    assert wait_for(lambda: len(srv.messages(domain, local)) >= count, timeout=20), \
        srv.log_text()[-3000:]
    return [p.read_bytes() for p in srv.messages(domain, local)]


def split_delivered(data):
    """Maildir file -> (Received header bytes, the rest). Delivery adds its own lines first."""
    m = RECEIVED.search(data)
    assert m, data[:600]
    return m, data[m.end():]


def test_ehlo_lists_extensions(server):
    c, lines = greet(server.smtpd_port)
    words = [l[4:].split()[0] for l in lines[1:]]
    for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                "CHUNKING", "DSN"):
        assert ext in words, lines
    assert "SIZE 10240000" in [l[4:] for l in lines]
    assert lines[0].startswith("250-mx.example.com")
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()


def test_mail_without_helo(server_factory):
    """smtpd_helo_required = no (the default) takes MAIL before HELO, as
    Postfix does; the Received line then names the client by its host name.
    With yes, MAIL gets Postfix's 503 until HELO/EHLO (bench/compare_restrict.py
    holds both dialogues against Postfix 3.7)."""
    srv = server_factory({})
    c = RawClient(srv.smtpd_port)
    assert c.reply()[0] == 220
    assert c.cmd("MAIL FROM:<alice@sender.example>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: no helo\r\n\r\nbody\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    m, rest = split_delivered(delivered(srv)[0])
    assert m.group(1) == b"localhost"
    assert m.group(2) == b"SMTP"
    assert rest.startswith(b"Subject: no helo")

    strict = server_factory({"smtpd_helo_required": "yes"})
    c = RawClient(strict.smtpd_port)
    assert c.reply()[0] == 220
    code, text, _ = c.cmd("MAIL FROM:<alice@sender.example>")
    assert (code, text) == (503, "5.5.1 Error: send HELO/EHLO first")
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<alice@sender.example>")[0] == 250
    c.close()


def test_greeting_is_banner(server_factory):
    srv = server_factory({"smtpd_banner": "$myhostname ESMTP test banner"})
    c = RawClient(srv.smtpd_port)
    code, text, _ = c.reply()
    assert (code, text) == (220, "mx.example.com ESMTP test banner")
    c.close()


def test_smtplib_message_byte_for_byte(server):
    with smtplib.SMTP("127.0.0.1", server.smtpd_port, local_hostname="client.example") as s:
        s.ehlo()
        refused = s.sendmail("alice@sender.example", ["u@example.com"], MSG)
        assert refused == {}
    data = delivered(server)[0]
    m, rest = split_delivered(data)
    assert m.group(1) == b"client.example"
    assert m.group(2) == b"ESMTP"
    assert m.group(4) == b"u@example.com"
    assert rest == MSG  # smtplib dot-stuffs; the server unstuffs exactly
    log = (server.tmp / "maillog").read_text()
    qid = m.group(3).decode()
    assert "connect from localhost[127.0.0.1]" in log
    assert "%s: client=localhost[127.0.0.1]" % qid in log
    assert re.search(r"%s: from=<alice@sender\.example>, size=\d+, nrcpt=1" % qid, log)
    assert wait_for(lambda: "disconnect from localhost[127.0.0.1]" in
                    (server.tmp / "maillog").read_text())


def test_client_name_is_forward_confirmed(server_factory):
    """Postfix's smtpd_peername_lookup: the PTR name counts only when it
    resolves back to the client. 127.0.0.1 is localhost both ways in the
    resolver's built-in zones (RFC 6761 6.3); 127.0.0.2 has no PTR."""
    srv = server_factory({"smtpd_client_connection_count_limit": "100"})
    for source, name in (("127.0.0.1", "localhost"), ("127.0.0.2", "unknown")):
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30,
                          source_address=(source, 0)) as c:
            c.ehlo("client.example")
            c.sendmail("alice@sender.example", ["u@example.com"], b"Subject: n\r\n\r\nx\r\n")
        assert wait_for(lambda: "disconnect from %s[%s]" % (name, source) in srv.log_text()), \
            srv.log_text()[-2000:]
        assert "connect from %s[%s]" % (name, source) in srv.log_text()
    assert wait_for(lambda: len(srv.messages("example.com", "u")) == 2, timeout=20)
    received = [p.read_bytes().split(b"\nReceived: ", 1)[1].split(b"\n", 1)[0]
                for p in srv.messages("example.com", "u")]
    assert sorted(received) == [b"from client.example (localhost [127.0.0.1])\r",
                                b"from client.example (unknown [127.0.0.2])\r"], received


def test_client_gone_during_the_name_lookup(server):
    """A client that hangs up before the greeting (the name lookup still
    running) ends its session there and then, not at shutdown."""
    for _ in range(3):
        socket.create_connection(("127.0.0.1", server.smtpd_port), timeout=10).close()
    assert wait_for(lambda: server.log_text().count("disconnect from localhost[127.0.0.1]") >= 3,
                    timeout=20), server.log_text()[-2000:]


def test_client_name_lookup_off(server_factory):
    srv = server_factory({"smtpd_peername_lookup": "no"})
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.noop()
    assert wait_for(lambda: "disconnect from unknown[127.0.0.1]" in srv.log_text())


def test_swaks_pipelining(server):
    if not shutil.which("swaks"):
        pytest.skip("swaks not installed")
    body = "Subject: piped\r\n\r\nsent with PIPELINING"  # swaks adds CRLF . CRLF
    r = subprocess.run(["swaks", "--timeout", "120", "--server", "127.0.0.1:%d" % server.smtpd_port,
                        "--from", "a@sender.example", "--to", "u@example.com",
                        "--helo", "client.example", "--pipeline", "--data", body],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Ok: queued as" in r.stdout
    m, rest = split_delivered(delivered(server)[0])
    assert rest == b"Subject: piped\r\n\r\nsent with PIPELINING\r\n"


def test_pipelined_transactions_in_one_write(server):
    """Two whole transactions and QUIT in one packet: replies in order, both queued."""
    c, _ = greet(server.smtpd_port)
    one = b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n"
    c.send(one + b"Subject: 1\r\n\r\none\r\n.\r\n" + one + b"Subject: 2\r\n\r\ntwo\r\n.\r\n"
           + b"QUIT\r\n")
    codes = [c.reply()[0] for _ in range(9)]
    assert codes == [250, 250, 354, 250, 250, 250, 354, 250, 221]
    assert c.closed()
    bodies = sorted(split_delivered(d)[1] for d in delivered(server, count=2))
    assert bodies == [b"Subject: 1\r\n\r\none\r\n", b"Subject: 2\r\n\r\ntwo\r\n"]


def test_bdat_chunking(server):
    c, _ = greet(server.smtpd_port)
    part1 = b"Subject: chunked\r\n\r\n.not stuffed\r\n"
    part2 = b"..still not\r\n.\r\nend\r\n"
    # Everything pipelined, chunk boundaries in the middle of lines.
    c.send(b"MAIL FROM:<a@sender.example> BODY=8BITMIME\r\nRCPT TO:<u@example.com>\r\n"
           + b"BDAT %d\r\n" % len(part1) + part1
           + b"BDAT %d\r\n" % 5 + part2[:5]
           + b"BDAT %d LAST\r\n" % (len(part2) - 5) + part2[5:] + b"QUIT\r\n")
    replies = [c.reply() for _ in range(6)]
    assert [r[0] for r in replies] == [250, 250, 250, 250, 250, 221], replies
    assert "queued as" in replies[4][1]
    _, rest = split_delivered(delivered(server)[0])
    assert rest == part1 + part2


def test_bdat_zero_last_and_bdat_without_transaction(server):
    c, _ = greet(server.smtpd_port)
    # BDAT with no transaction: the bytes are skipped, the session stays in step.
    c.send(b"BDAT 18\r\nNOOP\r\nNOOP\r\nNOOP\r\n")
    assert c.reply()[0] == 503
    assert c.cmd("NOOP")[0] == 250
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\n"
           b"BDAT 11\r\nSubject: \r\nBDAT 0 LAST\r\n")
    replies = [c.reply() for _ in range(4)]
    assert [r[0] for r in replies] == [250, 250, 250, 250], (replies, server.log_text()[-3000:])
    assert c.cmd("QUIT")[0] == 221
    _, rest = split_delivered(delivered(server)[0])
    assert rest == b"Subject: \r\n"


def test_relay_refused_outside_mynetworks(server_factory):
    srv = server_factory({"mynetworks": "192.0.2.0/24"})
    c, _ = greet(srv.smtpd_port)
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    code, text, _ = c.cmd("RCPT TO:<victim@elsewhere.example>")
    # Postfix's default smtpd_relay_restrictions ends in defer_unauth_destination.
    assert code == 454
    assert text == "4.7.1 <victim@elsewhere.example>: Relay access denied"
    # Local recipients are still welcome.
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    c.cmd("QUIT")
    assert "reject: RCPT from localhost[127.0.0.1]: 454 4.7.1" in (srv.tmp / "maillog").read_text()


def test_relay_allowed_from_mynetworks(server):
    c, _ = greet(server.smtpd_port)
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    assert c.cmd("RCPT TO:<someone@elsewhere.example>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    c.cmd("QUIT")


def test_unknown_user_with_mailbox_map(server_factory, tmp_path):
    vmap = tmp_path / "vmailbox"
    vmap.write_text("known@virt.example  virt.example/known/\n")
    srv = server_factory({"virtual_mailbox_domains": "virt.example",
                          "virtual_mailbox_maps": "texthash:%s" % vmap})
    c, _ = greet(srv.smtpd_port)
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    code, text, _ = c.cmd("RCPT TO:<nobody@virt.example>")
    assert code == 550 and text.startswith("5.1.1 "), text
    assert c.cmd("RCPT TO:<known@virt.example>")[0] == 250
    c.cmd("QUIT")


@pytest.mark.parametrize("seq", [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n",
                                 b"\r.\r\n", b"\n", b"\r"])
def test_smuggling_refused_nothing_queued(server, seq):
    c, _ = greet(server.smtpd_port)
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    # If seq ended the message, the lines after it would be commands.
    c.send(b"Subject: outer\r\n\r\nhello" + seq
           + b"MAIL FROM:<evil@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n"
           + b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n")
    code, text, _ = c.reply()
    assert code == 550 and text.startswith("5.6.0"), (code, text)
    assert c.reply()[0] == 221
    assert c.closed()
    # A clean message afterwards is the marker that the queue has moved on.
    with smtplib.SMTP("127.0.0.1", server.smtpd_port) as s:
        s.sendmail("a@sender.example", ["u@example.com"], b"Subject: marker\r\n\r\nok\r\n")
    msgs = delivered(server)
    assert len(msgs) == 1 and b"Subject: marker" in msgs[0]
    assert b"smuggled" not in b"".join(msgs)


def test_bare_lf_in_bdat_refused(server):
    c, _ = greet(server.smtpd_port)
    chunk = b"Subject: x\r\n\r\nbare\nlf\r\n"
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\n"
           + b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    replies = [c.reply() for _ in range(3)]
    assert replies[2][0] == 550, replies
    assert c.cmd("QUIT")[0] == 221


def test_long_data_line_refused(server):
    c, _ = greet(server.smtpd_port)
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: x\r\n\r\n" + b"y" * 999 + b"\r\n.\r\n")
    code, text, _ = c.reply()
    assert code == 550 and "998" in text
    # 998 octets is fine
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: x\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n")
    r = c.reply()
    assert r[0] == 250, (r, server.log_text()[-3000:])
    c.cmd("QUIT")


def test_size_limit(server_factory):
    srv = server_factory({"message_size_limit": "2000"})
    c, lines = greet(srv.smtpd_port)
    assert "250-SIZE 2000" in lines
    code, text, _ = c.cmd("MAIL FROM:<a@sender.example> SIZE=2001")
    assert (code, text[:5]) == (552, "5.3.4")
    assert c.cmd("MAIL FROM:<a@sender.example> SIZE=100")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40 + b".\r\n")
    code, text, _ = c.reply()
    assert (code, text[:5]) == (552, "5.3.4")
    # The session is still in step: a small message goes through.
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    msgs = delivered(srv)
    assert len(msgs) == 1 and b"Subject: small" in msgs[0]


def test_header_size_limit(server_factory):
    srv = server_factory({"header_size_limit": "200"})
    c, _ = greet(srv.smtpd_port)
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(10)) + b"\r\nb\r\n.\r\n")
    code, text, _ = c.reply()
    assert (code, text[:5]) == (552, "5.3.4")
    c.cmd("QUIT")


def test_recipient_limit(server_factory):
    srv = server_factory({"smtpd_recipient_limit": "2"})
    c, _ = greet(srv.smtpd_port)
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    assert c.cmd("RCPT TO:<u1@example.com>")[0] == 250
    assert c.cmd("RCPT TO:<u2@example.com>")[0] == 250
    code, text, _ = c.cmd("RCPT TO:<u3@example.com>")
    assert (code, text[:5]) == (452, "4.5.3")
    c.cmd("QUIT")


def test_malformed_commands(server):
    c, _ = greet(server.smtpd_port)
    code, text, _ = c.cmd("XYZZY")
    assert (code, text[:5]) == (500, "5.5.2")
    code, text, _ = c.cmd("MAIL FROM:a@sender.example")
    assert (code, text[:5]) == (501, "5.5.4")
    code, text, _ = c.cmd("MAIL FROM:<a@sender.example> FOO=BAR")
    assert (code, text[:5]) == (555, "5.5.4")
    code, text, _ = c.cmd("RCPT TO:<u@example.com>")
    assert (code, text[:5]) == (503, "5.5.1")
    code, text, _ = c.cmd("DATA")
    assert (code, text[:5]) == (503, "5.5.1")
    code, text, _ = c.cmd("NOOP " + "x" * 3000)
    assert (code, text[:5]) == (500, "5.5.6")
    assert c.cmd("NOOP")[0] == 250
    code, text, _ = c.cmd("VRFY u@example.com")
    assert code == 252
    c.cmd("QUIT")


def test_nested_mail(server):
    c = RawClient(server.smtpd_port)
    c.reply()
    assert c.cmd("HELO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 503
    assert c.cmd("DATA")[0] == 554  # no valid recipients
    c.cmd("QUIT")


def test_dsn_and_smtputf8_parameters(server):
    c, _ = greet(server.smtpd_port)
    assert c.cmd("MAIL FROM:<a@sender.example> RET=HDRS ENVID=abc+2B1 SMTPUTF8")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com> NOTIFY=SUCCESS,FAILURE "
                 "ORCPT=rfc822;u+40example.com")[0] == 250
    code, text, _ = c.cmd("RCPT TO:<j\u00f6rg@example.com>")
    assert code == 250, text
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: utf8\r\n\r\nhi\r\n.\r\n")
    code, text, _ = c.reply()
    assert code == 250, text
    c.cmd("QUIT")
    m, _ = split_delivered(delivered(server)[0])
    assert m.group(2) == b"UTF8SMTP"


def test_utf8_address_without_smtputf8_refused(server):
    c, _ = greet(server.smtpd_port)
    code, text, _ = c.cmd("MAIL FROM:<j\u00f6rg@sender.example>")
    assert (code, text[:5]) == (553, "5.6.7")
    c.cmd("QUIT")


def test_hard_error_limit(server_factory):
    srv = server_factory({"smtpd_hard_error_limit": "3"})
    c, _ = greet(srv.smtpd_port)
    for _ in range(3):
        assert c.cmd("BOGUS")[0] == 500
    code, text, _ = c.reply()
    assert code == 421
    assert c.closed()


def test_idle_timeout_closes(server_factory):
    srv = server_factory({"smtpd_timeout": "1s"})
    c, _ = greet(srv.smtpd_port)
    code, text, _ = c.reply()  # nothing sent: the server gives up first
    assert code == 421 and text.startswith("4.4.2"), text
    assert c.closed()
    assert wait_for(lambda: "timeout after EHLO from localhost[127.0.0.1]" in
                    (srv.tmp / "maillog").read_text())


def test_reload_keeps_open_session_rules(server_factory):
    """A session keeps the configuration it started with; new sessions get the new one."""
    srv = server_factory({"smtpd_recipient_limit": "1"})
    c, _ = greet(srv.smtpd_port)
    srv.settings["smtpd_recipient_limit"] = "5"
    srv.settings["smtpd_banner"] = "$myhostname ESMTP reloaded"
    srv.reload()

    def new_banner():
        d = RawClient(srv.smtpd_port)
        text = d.reply()[1]
        d.cmd("QUIT")
        d.close()
        return text == "mx.example.com ESMTP reloaded"

    assert wait_for(new_banner, timeout=20)
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    assert c.cmd("RCPT TO:<u1@example.com>")[0] == 250
    assert c.cmd("RCPT TO:<u2@example.com>")[0] == 452  # the old limit still applies
    assert c.cmd("QUIT")[0] == 221


def test_disconnect_statistics(server):
    c, _ = greet(server.smtpd_port)
    assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    assert c.cmd("RCPT TO:<bad address>")[0] == 501
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()
    assert wait_for(lambda: "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 quit=1 "
                    "commands=4/5" in (server.tmp / "maillog").read_text())


def test_pipelined_quit_then_half_close(server):
    """A client that sends everything, QUIT included, then shuts down its side still gets
    every reply, and the message is queued."""
    c, _ = greet(server.smtpd_port)
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n"
           b"Subject: half\r\n\r\nclosed\r\n.\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    codes = [c.reply()[0] for _ in range(5)]
    assert codes == [250, 250, 354, 250, 221]
    assert c.closed()
    _, rest = split_delivered(delivered(server)[0])
    assert rest == b"Subject: half\r\n\r\nclosed\r\n"


def test_quit_closes_at_once_unless_more_follows(server):
    """After a QUIT that nothing followed the server closes without waiting
    for the client's FIN (as Postfix does): its end of the connection is gone
    while ours is still open. Text pipelined after QUIT is read and dropped
    instead (the lingering close), so the 221 still arrives and the close is
    clean, not a reset."""
    c, _ = greet(server.smtpd_port)
    port = c.sock.getsockname()[1]
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()

    def server_side_open():
        """The server's end as a socket a process still holds (-p names it)."""
        out = subprocess.run(["ss", "-tnpH", "state", "all", "sport", "= :%d" % server.smtpd_port,
                              "dport", "= :%d" % port], capture_output=True, text=True).stdout
        return [l for l in out.splitlines() if "users:" in l]
    # The client has not closed its side: a lingering server would still hold its socket.
    assert wait_for(lambda: not server_side_open(), timeout=2), server_side_open()
    c.close()

    c, _ = greet(server.smtpd_port)
    c.send(b"QUIT\r\nNOOP\r\nNOOP\r\n")
    assert c.reply()[0] == 221
    assert c.closed()
    assert c.buf == b""
    c.close()


def test_client_vanishes_mid_data_nothing_queued(server):
    c, _ = greet(server.smtpd_port)
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n"
           b"Subject: cut\r\n\r\npartial")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.close()
    assert wait_for(lambda: "lost connection after DATA" in (server.tmp / "maillog").read_text())
    with smtplib.SMTP("127.0.0.1", server.smtpd_port) as s:
        s.sendmail("a@sender.example", ["u@example.com"], b"Subject: marker\r\n\r\nok\r\n")
    msgs = delivered(server)
    assert len(msgs) == 1 and b"marker" in msgs[0]
    incoming = server.data / "queue" / "incoming"
    assert wait_for(lambda: not incoming.exists() or not any(incoming.iterdir()))


def test_submission_port_needs_auth_to_relay(server):
    """mynetworks (127.0.0.0/8 here) opens the MX port only; submission wants
    STARTTLS, then AUTH, before MAIL (test_submission.py covers the rest)."""
    c, _ = greet(server.submission_port)
    code, text, _ = c.cmd("MAIL FROM:<a@sender.example>")
    assert (code, text[:5]) == (530, "5.7.0")
    c.cmd("QUIT")


def test_garbage_input_does_not_hurt(server):
    """Seeded random junk (commands, NULs, CR/LF soup, huge lines, BDAT sizes)
    from several clients; the server stays up and answers cleanly after."""
    import random
    rnd = random.Random(5321)
    pieces = [b"MAIL FROM:<a@sender.example>\r\n", b"RCPT TO:<u@example.com>\r\n",
              b"DATA\r\n", b"BDAT 7\r\n", b"BDAT 3 LAST\r\n", b"\r\n.\r\n", b"\n.\n",
              b"\r.\r", b".\r\n", b"RSET\r\n", b"EHLO x\r\n", b"\x00\xff\xfe", b"\r", b"\n",
              b"A" * 3000, b"MAIL FROM:<\"\\\x00\"@x>\r\n", b"RCPT TO:<@a,@b:c@d>\r\n"]
    for _ in range(12):
        c = RawClient(server.smtpd_port, timeout=5)
        c.reply()
        c.send(b"EHLO fuzz.example\r\n")
        junk = b"".join(rnd.choice(pieces) if rnd.random() < 0.7 else
                        bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 40)))
                        for _ in range(rnd.randint(5, 60)))
        try:
            c.send(junk)
            c.send(b"\r\n.\r\nQUIT\r\n")
            c.closed()
        except OSError:
            pass
        c.close()
    c, _ = greet(server.smtpd_port)
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("QUIT")[0] == 221
