"""DKIM signing at spool entry, end to end: mail we originate (SMTP from
mynetworks by DATA and BDAT, AUTH on submission, `sendmail`) whose From: domain is a DKIM domain is signed once
when it is queued, with keys made by `hongyan dkim keygen` (RSA, Ed25519,
both); what reaches a local Maildir and a remote aiosmtpd peer verifies
with dkimpy against the public keys served by a dnslib server (and with
opendkim-testmsg where a network namespace can be made for it). Mail of
other domains, and inbound MX mail from outside mynetworks, is not signed;
a deferred message is retried with the very same signed bytes.

Addresses: the server's mynetworks is 127.0.0.2/32 only. Clients connect
from 127.0.0.2 to be "ours" and from 127.0.0.1 to be a stranger on the MX
port (both are loopback addresses on Linux).
"""
import json
import pathlib
import re
import smtplib
import ssl
import subprocess

import dkim
import pytest

from conftest import wait_for
from dnsserver import DNSServer
from smtppeer import Peer

DOMAINS = {
    "rsa.example.com": ["--algorithm", "rsa"],
    "ed.example.com": ["--algorithm", "ed25519"],
    "both.example.com": [],  # one key per dkim_algorithm: rsa and ed25519
}
EXPECT_ALGS = {
    "rsa.example.com": ["rsa-sha256"],
    "ed.example.com": ["ed25519-sha256"],
    "both.example.com": ["rsa-sha256", "ed25519-sha256"],
}
HERE = pathlib.Path(__file__).resolve().parent
OURS = "127.0.0.2"
STRANGER = "127.0.0.1"


def parse_zone_lines(text):
    """{name: record} from `dkim keygen` output lines."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(\S+)\. IN TXT \( (.*) \)$', line)
        assert m, line
        out[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return out


def message(domain, tag):
    return ("From: Alice <alice@%s>\r\n"
            "To: Bob <bob@example.net>\r\n"
            "Subject: signing path %s\r\n"
            "Date: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            "Message-ID: <%s@%s>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "Hello Bob,\r\n"
            "\r\n"
            ". a line that starts with a dot\r\n"
            "-- \r\n"
            "Alice\r\n" % (domain, tag, tag, domain))


def header_block(msg):
    return msg.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def signatures(msg):
    """The DKIM-Signature fields of msg's header, in order, as bytes."""
    return re.findall(rb"^DKIM-Signature:.*?\r\n(?![ \t])", header_block(msg), re.M | re.S | re.I)


def tag(sig, name):
    m = re.search(rb"[;\s]" + name.encode() + rb"=\s*([^;\s]+)", sig.replace(b"\r\n\t", b" "))
    return m.group(1).decode() if m else None


def crlf(data):
    """Maildir files may use LF; DKIM works on the CRLF form (RFC 6376 3.4)."""
    return data if b"\r\n" in data else data.replace(b"\n", b"\r\n")


@pytest.fixture
def env(server_factory, tmp_path):
    """A stopped server with keys for DOMAINS, a DNS server with their records, a remote peer."""
    with DNSServer({}) as dns, Peer() as peer:
        srv = server_factory(extra={
            "mynetworks": OURS + "/32",
            "dkim_domains": " ".join(DOMAINS),
            "dkim_algorithm": "rsa, ed25519",
            "dns_resolver": dns.address,
            "relayhost": "[127.0.0.1]:%d" % peer.port,
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        }, start=False)
        keys = {}
        for domain, args in DOMAINS.items():
            r = srv.cmd("dkim", "keygen", domain, *args)
            assert r.returncode == 0, r.stderr
            keys.update(parse_zone_lines(r.stdout))
        assert len(keys) == 4, keys
        r = srv.cmd("user", "add", "sam", input="sam's password\n")
        assert r.returncode == 0, r.stderr
        for name, txt in keys.items():
            dns.set(name, [("TXT", txt)])
        srv.start()
        yield {"srv": srv, "dns": dns, "peer": peer, "keys": keys}


def dnsfunc_for(keys):
    def dnsfunc(name, timeout=5):
        txt = keys.get(name.decode().rstrip("."))
        return txt.encode() if txt else None
    return dnsfunc


def verify_all(env, msg):
    """dkimpy's verdict on each signature of msg, top first."""
    msg = crlf(msg)
    n = len(signatures(msg))
    d = dkim.DKIM(msg, minkey=1024)
    out = []
    for i in range(n):
        try:
            out.append(d.verify(idx=i, dnsfunc=dnsfunc_for(env["keys"])))
        except dkim.ValidationError:
            out.append(False)
    return out


def assert_signed(env, msg, domain):
    msg = crlf(msg)
    sigs = signatures(msg)
    assert [tag(s, "a") for s in sigs] == EXPECT_ALGS[domain], msg[:1500]
    assert all(tag(s, "d") == domain for s in sigs)
    assert verify_all(env, msg) == [True] * len(sigs), msg[:1500]
    # Tampering with the body breaks every signature: the verdicts above mean something.
    tampered = msg.replace(b"Hello Bob", b"Hello Bub")
    assert verify_all(env, tampered) == [False] * len(sigs)


def opendkim_verify(env, tmp, msg):
    """opendkim-testmsg's exit status for msg (0: verified), None where it cannot run.
    See opendkim_netns.py: it needs its own network namespace for port 53."""
    (tmp / "odkeys.json").write_text(json.dumps(env["keys"]))
    (tmp / "odmsg.eml").write_bytes(msg)
    try:
        r = subprocess.run(["unshare", "--net", "--mount", "/usr/bin/python3",
                            str(HERE / "opendkim_netns.py"), str(tmp / "odkeys.json"),
                            str(tmp / "odmsg.eml")], capture_output=True, timeout=60)
    except FileNotFoundError:
        return None
    if b"unshare failed" in r.stderr or b"Operation not permitted" in r.stderr:
        return None
    return r.returncode


def smtp_send(srv, source, frm, rcpt, body):
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, source_address=(source, 0), timeout=30) as c:
        c.ehlo("client.example")
        c.sendmail(frm, [rcpt], body.encode())


def sendmail(srv, frm, rcpt, body):
    r = srv.cmd("sendmail", "-f", frm, rcpt, input=body.replace("\r\n", "\n"))
    assert r.returncode == 0, r.stderr


def local_messages(srv, local):
    return [p.read_bytes() for p in srv.messages("example.com", local)]


def wait_local(srv, local, count=1):
    assert wait_for(lambda: len(srv.messages("example.com", local)) >= count, timeout=30), \
        srv.log_text()[-3000:]
    return local_messages(srv, local)


def wait_remote(env, count):
    peer = env["peer"]
    assert wait_for(lambda: len(peer.messages) >= count, timeout=30), env["srv"].log_text()[-3000:]
    assert len(peer.messages) == count, env["srv"].log_text()[-3000:]
    return [m.data for m in peer.messages]


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_smtp_from_mynetworks_is_signed_local_and_remote(env, domain, tmp_path):
    srv = env["srv"]
    local = domain.split(".")[0] + "smtp"
    smtp_send(srv, OURS, "alice@" + domain, local + "@example.com", message(domain, "l" + local))
    smtp_send(srv, OURS, "alice@" + domain, "bob@example.net", message(domain, "r" + local))
    (stored,) = wait_local(srv, local)
    assert_signed(env, stored, domain)
    (sent,) = wait_remote(env, 1)
    assert_signed(env, sent, domain)
    # The signatures are the first lines of the queued message, above our Received.
    assert re.match(rb"(DKIM-Signature:.*?\r\n(?![ \t]))+Received: from client\.example ", sent,
                    re.S), sent[:1500]
    assert "DKIM-Signature field added (d=%s" % domain in srv.log_text()
    # The other independent verifier, where it can run (see opendkim_netns.py).
    rc = opendkim_verify(env, tmp_path, sent)
    if rc is not None:
        assert rc == 0
        assert opendkim_verify(env, tmp_path, sent.replace(b"Hello Bob", b"Hello Bub")) != 0


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_sendmail_is_signed_local_and_remote(env, domain):
    srv = env["srv"]
    local = domain.split(".")[0] + "pickup"
    sendmail(srv, "alice@" + domain, local + "@example.com", message(domain, "l" + local))
    sendmail(srv, "alice@" + domain, "bob@example.net", message(domain, "r" + local))
    (stored,) = wait_local(srv, local)
    assert_signed(env, stored, domain)
    (sent,) = wait_remote(env, 1)
    assert_signed(env, sent, domain)
    assert sent.startswith(b"DKIM-Signature:")


def test_authenticated_submission_is_signed(env):
    """AUTH on submission_listen, from an address outside mynetworks."""
    srv = env["srv"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    with smtplib.SMTP("127.0.0.1", srv.submission_port, source_address=(STRANGER, 0),
                      timeout=30) as c:
        c.starttls(context=ctx)
        c.login("sam", "sam's password")
        c.sendmail("alice@ed.example.com", ["bob@example.net"],
                   message("ed.example.com", "auth").encode())
    (sent,) = wait_remote(env, 1)
    assert_signed(env, sent, "ed.example.com")


def test_bdat_from_mynetworks_is_signed(env):
    """CHUNKING (RFC 3030): the message in two BDAT chunks."""
    srv = env["srv"]
    data = message("rsa.example.com", "bdat").encode()
    half = len(data) // 2
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, source_address=(OURS, 0), timeout=30) as c:
        c.ehlo("client.example")
        assert c.has_extn("chunking")
        assert c.mail("alice@rsa.example.com")[0] == 250
        assert c.rcpt("bob@example.net")[0] == 250
        c.send(b"BDAT %d\r\n" % half + data[:half])
        code, text = c.getreply()
        assert code == 250, (text, srv.log_text()[-3000:])
        c.send(b"BDAT %d LAST\r\n" % (len(data) - half) + data[half:])
        code, text = c.getreply()
        assert code == 250, (text, srv.log_text()[-3000:])
    (sent,) = wait_remote(env, 1)
    assert_signed(env, sent, "rsa.example.com")


def test_other_domains_are_not_signed(env):
    srv = env["srv"]
    body = message("example.org", "other")
    smtp_send(srv, OURS, "alice@example.org", "bob@example.net", body)
    sendmail(srv, "alice@example.org", "other@example.com", body)
    (sent,) = wait_remote(env, 1)
    (stored,) = wait_local(srv, "other")
    assert signatures(sent) == [] and signatures(crlf(stored)) == []
    assert b"Hello Bob" in sent and b"Hello Bob" in stored


def test_subdomain_of_a_dkim_domain_is_signed_with_the_parent_domain(env):
    srv = env["srv"]
    body = message("news.ed.example.com", "sub")
    smtp_send(srv, OURS, "alice@news.ed.example.com", "bob@example.net", body)
    (sent,) = wait_remote(env, 1)
    sigs = signatures(sent)
    assert [tag(s, "d") for s in sigs] == ["ed.example.com"]
    assert verify_all(env, sent) == [True]


def test_inbound_mx_mail_from_strangers_is_not_signed(env):
    """A stranger writing From: one of our domains gets no signature from us."""
    srv = env["srv"]
    smtp_send(srv, STRANGER, "alice@both.example.com", "inbound@example.com",
              message("both.example.com", "inbound"))
    (stored,) = wait_local(srv, "inbound")
    assert signatures(crlf(stored)) == []
    assert b"Received: from client.example" in stored
    assert "DKIM-Signature field added" not in srv.log_text()


def test_retry_sends_the_same_signed_bytes(env):
    """The first attempt is refused with 451 after DATA; `queue flush` sends it again."""
    srv, peer = env["srv"], env["peer"]
    attempts = []
    handler = peer.controller.handler
    keep = handler.handle_DATA

    async def handle_DATA(server, session, envelope):
        attempts.append(envelope.content)
        if len(attempts) == 1:
            return "451 4.3.0 try again later"
        return await keep(server, session, envelope)

    handler.handle_DATA = handle_DATA
    smtp_send(srv, OURS, "alice@both.example.com", "bob@example.net",
              message("both.example.com", "retry"))
    assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=30), srv.log_text()
    assert len(attempts) == 1 and not peer.messages
    r = srv.cmd("queue", "flush")
    assert r.returncode == 0, r.stderr
    (sent,) = wait_remote(env, 1)
    assert len(attempts) == 2
    assert attempts[0] == attempts[1] == sent
    assert_signed(env, sent, "both.example.com")
    assert srv.log_text().count("DKIM-Signature field added") == 1


def test_unusable_key_queues_unsigned_with_a_log_line(server_factory):
    """A broken key must not lose mail: it goes out unsigned and the log says
    why. Only its own domain is affected: another domain still signs."""
    with Peer() as peer:
        srv = server_factory(extra={
            "mynetworks": OURS + "/32",
            "dkim_domains": "rsa.example.com, good.example.com",
            "relayhost": "[127.0.0.1]:%d" % peer.port,
        }, start=False)
        for domain in ("rsa.example.com", "good.example.com"):
            r = srv.cmd("dkim", "keygen", domain, "--algorithm", "rsa")
            assert r.returncode == 0, r.stderr
        (srv.data / "dkim" / "rsa.example.com" / "mail.pem").write_text("not a key\n")
        srv.start()
        assert re.search(r"DKIM signing disabled for a domain: .*rsa\.example\.com/mail\.pem",
                         srv.log_text()), srv.log_text()
        smtp_send(srv, OURS, "alice@rsa.example.com", "bob@example.net",
                  message("rsa.example.com", "broken"))
        smtp_send(srv, OURS, "alice@good.example.com", "bob@example.net",
                  message("good.example.com", "fine"))
        assert wait_for(lambda: len(peer.messages) == 2, timeout=30), srv.log_text()[-3000:]
        by_domain = {m.mail_from.split("@")[1]: m.data for m in peer.messages}
        broken, fine = by_domain["rsa.example.com"], by_domain["good.example.com"]
        assert signatures(broken) == [] and b"Hello Bob" in broken
        assert re.search(r"not DKIM-signed: signing keys for rsa\.example\.com not loaded: "
                         r".*mail\.pem: not a PEM private key", srv.log_text()), \
            srv.log_text()[-3000:]
        assert [tag(sig, "d") for sig in signatures(crlf(fine))] == ["good.example.com"]
