"""hongyan as a drop-in for Postfix on Debian: Debian 12's stock main.cf
(tests/data/postfix, from the postfix .deb) read by `config -n` and
`serve`, a reload with a bad value, and the mail log read by Debian's
pflogsumm with its counts checked against what the test sent.
"""
import os
import pathlib
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import BIN, ROOT, wait_for
from dnsserver import DNSServer
from smtppeer import Peer, make_cert

DATA = ROOT / "tests" / "data" / "postfix"
IGNORED_IN_STOCK = ("biff", "readme_directory", "compatibility_level")


def stock_main_cf(tmp):
    """main.cf as Debian's postinst writes it, with the paths that do not
    exist on a test machine (snakeoil, /etc/mailname, /etc/aliases) moved
    into tmp."""
    text = ((DATA / "main.cf.debian").read_text() + (DATA / "main.cf.tls").read_text()
            + (DATA / "postinst-lines.cf").read_text())
    cert, key = make_cert(tmp, "debian.example.com")
    for p in (cert, key):
        os.chmod(p, 0o644)
    (tmp / "mailname").write_text("mailname.example.org\n")
    (tmp / "aliases").write_text("postmaster: root\n")
    return (text.replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(cert))
            .replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(key))
            .replace("/etc/mailname", str(tmp / "mailname"))
            .replace("/etc/aliases", str(tmp / "aliases")))


def test_debian_stock_main_cf_with_the_relay_lines(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True,
              users={"api-key": "secret-key"}) as relay:
        srv = server_factory(start=False)
        relayhost = "[127.0.0.1]:%d" % relay.port
        (srv.tmp / "sasl_passwd").write_text("%s api-key:secret-key\n" % relayhost)
        text = stock_main_cf(srv.tmp)
        # SPEC.md's relay lines, the host changed.
        text += ("relayhost = %s\nsmtp_sasl_auth_enable = yes\n"
                 "smtp_sasl_password_maps = hash:%s\nsmtp_sasl_security_options = noanonymous\n"
                 "smtp_tls_security_level = may\nheader_size_limit = 4096000\n"
                 % (relayhost, srv.tmp / "sasl_passwd"))
        srv.cfg.write_text(text)

        # config -n: every line accepted, each ignored key named once as ignored.
        r = srv.cmd("config", "-n")
        assert r.returncode == 0, r.stderr
        for key in IGNORED_IN_STOCK:
            lines = [l for l in r.stdout.splitlines() if re.match(r"#? ?%s = " % key, l)]
            assert len(lines) == 1 and "ignored" in lines[0], r.stdout
        assert "smtp_tls_CApath = /etc/ssl/certs" in r.stdout
        assert "overriding earlier entry: relayhost=" in r.stderr  # postinst's empty one
        # config KEY on an ignored key says so on its line.
        r = srv.cmd("config", "biff")
        assert r.returncode == 0 and "ignored" in r.stdout and "biff" in r.stdout, r

        # serve: the same file plus where to listen and keep data on this machine.
        text += ("data_directory = %s\nsmtpd_listen = 127.0.0.1:%d\n"
                 "submission_listen = 127.0.0.1:%d\nmaillog_file = %s\n"
                 % (srv.data, srv.smtpd_port, srv.submission_port, srv.tmp / "maillog"))
        srv.cfg.write_text(text)
        for name in ("sasl_passwd", "aliases"):
            m = "hash:%s" % (srv.tmp / name)
            r = srv.cmd("map", "build", m)
            assert r.returncode == 0, r.stderr
        for p in srv.tmp.iterdir():
            os.chmod(p, os.stat(p).st_mode | 0o644)
        srv.start()
        log = srv.log_text()
        for key in IGNORED_IN_STOCK:
            assert len(re.findall(r": %s = \S+: ignored: " % key, log)) == 1, log
        assert "overriding earlier entry: relayhost=" in log

        # Mail from a local program leaves by the relay, from root@<first line of myorigin's file>.
        r = srv.cmd("sendmail", "-t", input="To: someone@example.net\nSubject: hi\n\nhello\n")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()
        user = os.environ.get("USER") or ("root" if os.geteuid() == 0 else None)
        sender = relay.messages[0].mail_from
        assert sender.endswith("@mailname.example.org"), sender
        if user:
            assert sender == "%s@mailname.example.org" % user
        assert relay.auth_ok == [("api-key", "PLAIN")]

        # A reload with a bad value keeps the running configuration and says why.
        srv.cfg.write_text(text + "relayhost = 127.0.0.1:31587x\n")
        srv.proc.send_signal(1)
        assert wait_for(lambda: "reload failed, keeping the running configuration" in
                        srv.log_text(), timeout=10), srv.log_text()
        assert "relayhost: '127.0.0.1:31587x'" in srv.log_text()
        # (sendmail reads the file too and refuses it; SMTP goes to the running server.)
        assert smtp_send(srv.smtpd_port, ["other@example.net"]) == []
        assert wait_for(lambda: len(relay.messages) == 2, timeout=20), srv.log_text()


def test_unsupported_and_typo_refused_by_serve(server_factory):
    srv = server_factory(start=False)
    srv.settings["always_bcc"] = "audit@example.com"
    srv.write_config()
    r = srv.cmd("serve", timeout=20)
    assert r.returncode == 78
    assert "always_bcc" in r.stderr and "unknown" not in r.stderr, r.stderr
    del srv.settings["always_bcc"]
    srv.settings["mydomian"] = "example.com"
    srv.write_config()
    r = srv.cmd("config", "-n")
    assert r.returncode == 78
    assert "unknown key 'mydomian'" in r.stderr and "'mydomain'" in r.stderr, r.stderr


def pflogsumm(args, path):
    r = subprocess.run(["pflogsumm"] + args + [str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    counts = {}
    for word in ("received", "delivered", "deferred", "bounced", "rejected"):
        m = re.search(r"^\s*(\d+)\s+%s\b" % word, r.stdout, re.M)
        counts[word] = int(m.group(1)) if m else None
    return counts, r.stdout


def smtp_send(port, rcpts, sender="carol@outside.example"):
    """Sends one message; returns the recipients refused."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.ehlo("client.outside.example")
        c.mail(sender)
        refused = [r for r in rcpts if c.rcpt(r)[0] >= 400]
        if len(refused) < len(rcpts):
            assert c.data(b"Subject: hello\r\n\r\nhello\r\n")[0] == 250
        return refused


@pytest.mark.skipif(shutil.which("pflogsumm") is None, reason="pflogsumm not installed")
def test_pflogsumm_counts(server_factory, tmp_path):
    """Received 5 (2 by SMTP, 3 by sendmail), delivered 4 (2 local, 1
    remote, 1 bounce notice), deferred 1, bounced 1, rejected 1."""
    with Peer() as mx, DNSServer({"example.net": [("MX", (10, "mx.example.net"))],
                                  "mx.example.net": [("A", "127.0.0.1")]}) as dns:
        mx.rcpt_replies["slow@example.net"] = "451 4.3.0 try again later"
        mx.rcpt_replies["gone@example.net"] = "550 5.1.1 <gone@example.net>: no such user"
        srv = server_factory({
            "myhostname": "mx.local.test", "mydomain": "local.test",
            "mydestination": "$myhostname, localhost, local.test",
            "mynetworks": "192.0.2.0/24",  # 127.0.0.1 is a stranger: relaying is refused
            "dns_resolver": dns.address, "smtp_tcp_port": str(mx.port),
        })
        assert smtp_send(srv.smtpd_port, ["u@local.test"]) == []
        assert smtp_send(srv.smtpd_port, ["v@local.test", "victim@elsewhere.example"]) == \
            ["victim@elsewhere.example"]
        for rcpt in ("bob@example.net", "slow@example.net", "gone@example.net"):
            r = srv.cmd("sendmail", "-f", "alice@local.test", rcpt, input="Subject: x\n\nx\n")
            assert r.returncode == 0, r.stderr
        maillog = srv.tmp / "maillog"

        def done():
            t = maillog.read_text(errors="replace") if maillog.exists() else ""
            return (t.count("status=sent") >= 4 and "status=bounced" in t
                    and "status=deferred" in t)
        assert wait_for(done, timeout=30), srv.log_text()
        text = maillog.read_text()
        assert re.search(r" hongyan/smtpd\[\d+\]: \w+: client=", text), text
        assert re.search(r" hongyan/pickup\[\d+\]: \w+: uid=\d+ from=<alice@local.test>", text)
        assert re.search(r" hongyan/smtpd\[\d+\]: \w+: reject: RCPT from ", text), text
        assert re.search(r" hongyan/smtp\[\d+\]: \w+: to=<bob@example.net>", text), text
        assert re.search(r" hongyan/virtual\[\d+\]: \w+: to=<u@local.test>", text), text
        assert re.search(r" hongyan/bounce\[\d+\]: \w+: sender non-delivery notification", text)
        assert re.search(r" hongyan/qmgr\[\d+\]: \w+: removed", text), text

        counts, out = pflogsumm(["--syslog-name=hongyan"], maillog)
        assert counts == {"received": 5, "delivered": 4, "deferred": 1, "bounced": 1,
                          "rejected": 1}, out
        by_domain = out.split("Host/Domain Summary: Message Delivery", 1)[1]
        assert "example.net" in by_domain and "local.test" in by_domain, out
        # Plain pflogsumm looks for postfix/: nothing of ours.
        assert pflogsumm([], maillog)[0]["received"] == 0


@pytest.mark.skipif(shutil.which("pflogsumm") is None, reason="pflogsumm not installed")
def test_syslog_name_postfix_for_plain_pflogsumm(server_factory):
    srv = server_factory({"syslog_name": "postfix", "mynetworks": "192.0.2.0/24"})
    assert smtp_send(srv.smtpd_port, ["u@example.com"]) == []
    maillog = srv.tmp / "maillog"
    assert wait_for(lambda: "status=sent" in maillog.read_text(), timeout=20), srv.log_text()
    assert re.search(r" postfix/smtpd\[\d+\]: \w+: client=", maillog.read_text())
    counts, out = pflogsumm([], maillog)
    assert counts["received"] == 1 and counts["delivered"] == 1, out


@pytest.mark.parametrize("cache", ["btree:${data_directory}/smtp_scache", ""])
def test_client_tls_session_cache(server_factory, tmp_path, cache):
    """Debian's smtp_tls_session_cache_database: the second connection to the
    relay resumes the first one's TLS session; without the key it does not."""
    with Peer(tmp=tmp_path, tls=True) as relay:
        srv = server_factory({"relayhost": "[127.0.0.1]:%d" % relay.port,
                              "smtp_tls_security_level": "encrypt",
                              "smtp_connection_cache_time_limit": "0s",
                              "smtp_tls_session_cache_database": cache})
        for n in (1, 2):
            assert smtp_send(srv.smtpd_port, ["r%d@example.net" % n]) == []
            assert wait_for(lambda: len(relay.messages) == n, timeout=20), srv.log_text()
        lines = re.findall(r"TLS connection established to .*", srv.log_text())
        assert len(lines) == 2, srv.log_text()
        assert "session reused" not in lines[0]
        assert ("session reused" in lines[1]) == bool(cache), lines


def test_parameter_table_names_every_postfix_key():
    r = subprocess.run(["/usr/bin/python3", str(ROOT / "scripts/gen-postfix-params.py"),
                        "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr
    names = (ROOT / "data/postfix-3.7-parameters.txt").read_text().split()
    assert len(names) == 1043 and "smtpd_relay_restrictions" in names
    # Each one is known to the binary: no Postfix name is an "unknown key".
    out = subprocess.run([BIN, "config"] + names, capture_output=True, text=True, timeout=60)
    assert "unknown key" not in out.stderr, out.stderr
