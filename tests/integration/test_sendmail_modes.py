"""sendmail(1) options applications use (issue 17): -bs (SMTP on stdin and
stdout, driven by swaks --pipe as an unprivileged user), -bv (the route,
nothing sent), the DSN options -N/-R/-V, -X ignored with a note, and a
clear error for an unknown option."""
import email
import email.policy
import os
import pwd
import re
import shutil
import subprocess
import time

import pytest

from conftest import BIN, wait_for
from dnsserver import DNSServer
from smtppeer import Peer


def read_msg(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def as_nobody(args, input=None):
    if os.geteuid() == 0 and shutil.which("runuser"):
        args = ["runuser", "-u", "nobody", "--"] + list(args)
    return subprocess.run(args, input=input, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_bs_session_through_swaks(server):
    pipe = "%s -c %s sendmail -bs" % (BIN, server.cfg)
    args = ["swaks", "--pipe", pipe, "--from", "carol@example.com", "--to", "bob@example.com",
            "--header", "Subject: via -bs", "--body", "line\n.leading dot\n"]
    r = as_nobody(args)
    assert r.returncode == 0, r.stdout + r.stderr
    codes = re.findall(r"^<[-~*]* +(\d{3})[ -]", r.stdout, re.M)
    # 220, the EHLO lines, 250, 250, 354, 250, 221.
    assert codes[0] == "220" and codes[-5:] == ["250", "250", "354", "250", "221"], r.stdout
    assert "250-PIPELINING" in r.stdout
    assert wait_for(lambda: server.messages("example.com", "bob"), timeout=15)
    m = read_msg(server.messages("example.com", "bob")[0])
    assert m["Subject"] == "via -bs"
    assert m["Return-Path"] == "<carol@example.com>"
    assert ".leading dot" in m.get_content()
    if os.geteuid() == 0:
        uid = pwd.getpwnam("nobody").pw_uid
        assert "from userid %d)" % uid in m.get_all("Received")[-1]


def test_bs_refuses_what_smtpd_refuses(server):
    dialogue = ("EHLO client.example\r\nRCPT TO:<bob@example.com>\r\n"
                "MAIL FROM:<a@example.com\r\n"
                "MAIL FROM:<a@example.com>\r\nRCPT TO:<bob@example.com> FOO=BAR\r\n"
                "DATA\r\nQUIT\r\n")
    r = server.cmd("sendmail", "-bs", input=dialogue)
    codes = re.findall(r"^(\d{3}) ", r.stdout, re.M)
    # 220, EHLO, RCPT before MAIL, bad path, MAIL ok, unknown parameter, DATA without RCPT, 221.
    assert codes == ["220", "250", "503", "501", "250", "555", "503", "221"], r.stdout


MAILBOXES = {"virtual_mailbox_maps":
             "inline:{alice@example.com=example.com/alice/, bob@example.com=example.com/bob/}"}


def test_bv_reports_the_route_and_sends_nothing(server_factory, tmp_path):
    with Peer(tmp=tmp_path) as relay, DNSServer({}) as dns:
        srv = server_factory(extra=dict(MAILBOXES, relayhost="[127.0.0.1]:%d" % relay.port,
                                        dns_resolver=dns.address))
        r = srv.cmd("sendmail", "-bv", "bob@example.com", "far@remote.test")
        assert r.returncode == 0, r.stderr
        assert re.search(r"^bob@example\.com: deliverable: mailbox .*/mail/example\.com/bob/$",
                         r.stdout, re.M), r.stdout
        assert ("far@remote.test: deliverable: relay=127.0.0.1, port %d (relayhost)"
                % relay.port) in r.stdout
        r = srv.cmd("sendmail", "-bv", "nosuch@example.com")
        assert r.returncode == 67 and "nosuch@example.com: undeliverable" in r.stdout, r.stdout
        time.sleep(1.5)
        assert relay.connections_after_start == 0
        assert not srv.messages("example.com", "bob")
        assert not list((srv.data / "queue" / "maildrop").iterdir())


def test_dsn_options_and_notes(server_factory):
    server = server_factory(extra=MAILBOXES)
    # -N never: the unknown recipient bounces with no DSN to the sender.
    r = server.cmd("sendmail", "-N", "never", "-f", "alice@example.com", "nosuch@example.com",
                   input="Subject: quiet\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: "to=<nosuch@example.com>" in server.log_text(), timeout=15)
    r = server.cmd("sendmail", "-f", "alice@example.com", "nosuch@example.com",
                   input="Subject: loud\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: server.messages("example.com", "alice"), timeout=15)
    time.sleep(1)
    dsns = [read_msg(p) for p in server.messages("example.com", "alice")]
    assert len(dsns) == 1 and "loud" in dsns[0].as_string()
    # Bad values are usage errors; -X is accepted with a note; unknown options are named.
    for args, word in ((["-N", "sometimes"], "-N"), (["-R", "body"], "-R"),
                       (["-V", "has space"], "-V")):
        r = server.cmd("sendmail", *args, "bob@example.com", input="x\n")
        assert r.returncode == 64 and word in r.stderr, r.stderr
    r = server.cmd("sendmail", "-X", "/tmp/log", "-V", "env-1", "-R", "hdrs", "-N",
                   "success,failure", "bob@example.com", input="Subject: x\n\nx\n")
    assert r.returncode == 0 and "-X /tmp/log ignored" in r.stderr, r.stderr
    r = server.cmd("sendmail", "-Z", "bob@example.com", input="x\n")
    assert r.returncode == 64 and "unsupported option -Z" in r.stderr, r.stderr
