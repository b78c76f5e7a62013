"""Inbound mail authentication end to end: mail sent by smtplib from outside
mynetworks (127.0.0.1 is excluded) to a running hongyan, with SPF, DKIM and
DMARC records served by a dnslib server reached through dns_resolver and
messages signed by dkimpy. Checks the Authentication-Results field in the
delivered Maildir file, the removal of forged fields carrying our
authserv_id, the smtpd_spf_policy / smtpd_dmarc_policy rejections (and that
nothing is queued then), and that a SERVFAIL never makes a 5xx.

Sender domains are under example.com/.net/.org, not .test: libunbound
answers .test itself (a default local zone, RFC 6761), even when
forwarding to dns_resolver.
"""
import base64
import re
import smtplib
import socket

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import wait_for
from dnsserver import DNSServer

AUTHSERV = "mx.example.com"  # authserv_id defaults to myhostname


@pytest.fixture(scope="module")
def key():
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    pub = k.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode()


def zone(keyrec):
    return {
        # passes everything: SPF allows 127.0.0.1, the mail is signed, p=reject
        "example.org": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
        "sel._domainkey.example.org": [("TXT", keyrec)],
        "_dmarc.example.org": [("TXT", "v=DMARC1; p=reject; rua=mailto:d@example.org")],
        # p=reject, but 127.0.0.1 is not a permitted sender
        "example.net": [("TXT", "v=spf1 ip4:192.0.2.1 -all")],
        "_dmarc.example.net": [("TXT", "v=DMARC1; p=reject")],
        # the DMARC record cannot be fetched
        "flaky.example.com": [("TXT", "v=spf1 ip4:192.0.2.1 -all")],
        "_dmarc.flaky.example.com": [("RCODE", "SERVFAIL")],
        # the subdomain policy of the organisational domain
        "example.com": [("TXT", "v=spf1 -all")],
        "_dmarc.example.com": [("TXT", "v=DMARC1; p=none; sp=reject")],
        "news.example.com": [("TXT", "v=spf1 ip4:192.0.2.1 -all")],
        # p=reject, and the SPF record (the only aligned check) cannot be fetched
        "shaky.example.net": [("RCODE", "SERVFAIL")],
        "_dmarc.shaky.example.net": [("TXT", "v=DMARC1; p=reject")],
        # np= (RFC 9091): reject for subdomains that do not exist, none otherwise
        "_dmarc.example.info": [("TXT", "v=DMARC1; p=none; sp=none; np=reject")],
        "www.example.info": [("A", "192.0.2.80")],
    }


@pytest.fixture
def dns(key):
    with DNSServer(zone(key[1])) as d:
        yield d


def outside(dns, **extra):
    """Settings for a server that sees 127.0.0.1 as an outside client."""
    s = {"dns_resolver": dns.address, "mynetworks": "192.0.2.0/24"}
    s.update(extra)
    return s


def message(sender_domain, subject="hello", extra_headers=""):
    return (
        "From: Alice <alice@%s>\r\n"
        "To: u@example.com\r\n"
        "Subject: %s\r\n"
        "Date: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <%s.1@%s>\r\n"
        "%s"
        "\r\n"
        "Hello from %s.\r\n" % (sender_domain, subject, subject, sender_domain, extra_headers,
                                sender_domain)
    ).encode()


def sign(msg, pem, domain="example.org"):
    sig = dkim.sign(msg, b"sel", domain.encode(), pem,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg


def delivered(srv, count=1):
    assert wait_for(lambda: len(srv.messages("example.com", "u")) >= count, timeout=30), \
        srv.log_text()[-3000:]
    return [p.read_bytes() for p in srv.messages("example.com", "u")]


def header_fields(data, name):
    """The unfolded values of every header field called name."""
    head = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data else data.split(b"\n\n", 1)[0]
    head = re.sub(rb"\r?\n[ \t]+", b" ", head).decode()
    out = []
    for line in re.split(r"\r?\n", head):
        n, _, v = line.partition(":")
        if n.strip().lower() == name.lower():
            out.append(v.strip())
    return out


def ours(data):
    fields = [f for f in header_fields(data, "Authentication-Results")
              if f.lower().startswith(AUTHSERV + ";")]
    assert len(fields) == 1, data[:2000]
    return re.sub(r"\s+", " ", fields[0])


def nothing_queued(srv):
    out = srv.cmd("queue", "list").stdout
    return "alice@" not in out


def send(srv, sender, msg, rcpt="u@example.com"):
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=60) as s:
        s.ehlo("client.example.org")
        return s.sendmail(sender, [rcpt], msg)


def test_signed_mail_passes_and_forged_results_go(server_factory, dns, key):
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject", smtpd_spf_policy="reject"))
    forged = ("Authentication-Results: mx.example.com; dkim=pass header.d=bank.test\r\n"
              "authentication-results: MX.Example.COM 1;\r\n\tspf=pass smtp.mailfrom=bank.test\r\n"
              "Authentication-Results: other.example.net; spf=fail smtp.mailfrom=x@y.test\r\n")
    msg = sign(message("example.org", extra_headers=forged), key[0])
    send(srv, "alice@example.org", msg)
    data = delivered(srv)[0]
    ar = ours(data)
    assert "spf=pass" in ar and "smtp.mailfrom=alice@example.org" in ar, ar
    assert "dkim=pass" in ar and "header.d=example.org" in ar and "header.s=sel" in ar, ar
    b = re.search(rb"\bb=([A-Za-z0-9+/=\s]+)", data.split(b"DKIM-Signature:", 1)[1]).group(1)
    b8 = re.sub(rb"\s", b"", b)[:8].decode()
    assert ('header.b="%s"' % b8) in ar or ("header.b=%s" % b8) in ar, (b8, ar)
    assert "dmarc=pass" in ar and "header.from=example.org" in ar, ar
    # the forgeries are gone, somebody else's field stays, the body is intact
    assert b"bank.test" not in data
    assert len(header_fields(data, "Authentication-Results")) == 2
    assert any(f.startswith("other.example.net;")
               for f in header_fields(data, "Authentication-Results"))
    assert data.endswith(b"Hello from example.org.\r\n")
    # what we kept still verifies: the field we added is above the signature
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: key[1].encode()
                       if name.rstrip(b".") == b"sel._domainkey.example.org" else None)
    assert "authentication: spf=pass dkim=pass dmarc=pass" in srv.log_text()


def test_dmarc_reject_refuses_with_reason(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@example.net", message("example.net"))
    code, text = e.value.smtp_code, e.value.smtp_error.decode()
    assert code == 550 and text.startswith("5.7.1"), (code, text)
    assert "DMARC" in text and "p=reject" in text and "example.net" in text, text
    assert "SPF" in text and "DKIM" in text, text  # it says what failed
    assert nothing_queued(srv)
    assert srv.messages("example.com", "u") == []
    assert wait_for(lambda: "reject: END-OF-MESSAGE" in srv.log_text())


def test_dmarc_tag_only_by_default(server_factory, dns):
    srv = server_factory(outside(dns))
    send(srv, "alice@example.net", message("example.net"))
    ar = ours(delivered(srv)[0])
    assert "spf=fail" in ar and "dkim=none" in ar, ar
    assert "dmarc=fail (p=reject dis=none) header.from=example.net" in ar, ar


def several_authors(pem):
    """Signed by example.org, whose DMARC passes; a second author at example.net (p=reject)."""
    msg = message("example.org", subject="two").replace(
        b"From: Alice <alice@example.org>",
        b"From: Alice <alice@example.org>, Mallory <mallory@example.net>")
    return sign(msg, pem)


def test_several_author_domains_strictest_failing_policy_applies(server_factory, dns, key):
    # RFC 7489 6.6.1: a second mailbox of another domain is no way around p=reject.
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@example.org", several_authors(key[0]))
    assert e.value.smtp_code == 550, e.value
    text = e.value.smtp_error.decode()
    assert "p=reject" in text and "example.net" in text, text
    assert nothing_queued(srv)


def test_several_author_domains_tagged_each(server_factory, dns, key):
    srv = server_factory(outside(dns))
    send(srv, "alice@example.org", several_authors(key[0]))
    ar = ours(delivered(srv)[0])
    assert "dmarc=pass (p=reject dis=none) header.from=example.org" in ar, ar
    assert "dmarc=fail (p=reject dis=none) header.from=example.net" in ar, ar
    assert "dmarc=permerror" not in ar, ar


def test_np_for_a_subdomain_that_does_not_exist(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@ghost.example.info", message("ghost.example.info"))
    assert e.value.smtp_code == 550, e.value
    assert "(np=reject)" in e.value.smtp_error.decode(), e.value
    assert "a domain that does not exist" in e.value.smtp_error.decode(), e.value
    # An existing subdomain gets sp=none: tagged, accepted.
    send(srv, "alice@www.example.info", message("www.example.info"))
    ar = ours(delivered(srv)[0])
    assert "dmarc=fail (p=none dis=none) header.from=www.example.info" in ar, ar


def test_subdomain_policy(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@news.example.com", message("news.example.com"))
    assert e.value.smtp_code == 550, e.value
    text = e.value.smtp_error.decode()
    assert "policy of example.com" in text and "news.example.com" in text, text
    assert nothing_queued(srv)


def test_dmarc_servfail_never_5xx(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject"))
    refused = send(srv, "alice@flaky.example.com", message("flaky.example.com"))
    assert refused == {}
    ar = ours(delivered(srv)[0])
    assert "dmarc=temperror" in ar and "spf=fail" in ar, ar
    assert ("_dmarc.flaky.example.com", "TXT") in dns.queries


def test_spf_reject(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_spf_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@example.net", message("example.net"))
    text = e.value.smtp_error.decode()
    assert e.value.smtp_code == 550 and text.startswith("5.7.23"), text
    assert "example.net" in text and "127.0.0.1" in text, text
    assert nothing_queued(srv)


def test_trusted_clients_are_not_judged(server_factory, dns):
    # 127.0.0.1 in mynetworks: our own mail, no checks, no header
    srv = server_factory({"dns_resolver": dns.address, "smtpd_dmarc_policy": "reject",
                          "smtpd_spf_policy": "reject"})
    send(srv, "alice@example.net", message("example.net"))
    data = delivered(srv)[0]
    assert header_fields(data, "Authentication-Results") == []
    assert ("_dmarc.example.net", "TXT") not in dns.queries


def test_bdat_gets_checked(server_factory, dns, key):
    srv = server_factory(outside(dns))
    msg = sign(message("example.org", subject="chunked"), key[0])
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=30) as c:
        f = c.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    return int(line[:3])
        assert reply() == 220
        c.sendall(b"EHLO client.example.org\r\n")
        assert reply() == 250
        c.sendall(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<u@example.com>\r\n")
        assert reply() == 250 and reply() == 250
        half = len(msg) // 2
        c.sendall(b"BDAT %d\r\n" % half + msg[:half])
        assert reply() == 250
        c.sendall(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        assert reply() == 250
        c.sendall(b"QUIT\r\n")
        assert reply() == 221
    ar = ours(delivered(srv)[0])
    assert "spf=pass" in ar and "dkim=pass" in ar and "dmarc=pass" in ar, ar


def test_spf_temperror_defers_never_refuses(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_spf_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@shaky.example.net", message("shaky.example.net"))
    text = e.value.smtp_error.decode()
    assert e.value.smtp_code == 451 and text.startswith("4.7.24"), text
    assert nothing_queued(srv)


def test_dmarc_reject_undecidable_is_451(server_factory, dns):
    srv = server_factory(outside(dns, smtpd_dmarc_policy="reject"))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(srv, "alice@shaky.example.net", message("shaky.example.net"))
    text = e.value.smtp_error.decode()
    assert e.value.smtp_code == 451 and text.startswith("4.7.1"), text
    assert "shaky.example.net" in text, text
    assert nothing_queued(srv)
    # with the tag policy the same message is accepted and says so
    srv2 = server_factory(outside(dns))
    send(srv2, "alice@shaky.example.net", message("shaky.example.net"))
    ar = ours(delivered(srv2)[0])
    assert "spf=temperror" in ar and "dmarc=temperror" in ar, ar


def test_dkim_verify_off(server_factory, dns, key):
    # no signature verified: no dkim= entry, and DMARC is recorded but not enforced
    srv = server_factory(outside(dns, smtpd_dkim_verify="no", smtpd_dmarc_policy="reject"))
    send(srv, "alice@example.net", sign(message("example.net"), key[0], domain="example.org"))
    ar = ours(delivered(srv)[0])
    assert "dkim=" not in ar and "spf=fail" in ar, ar
    assert "dmarc=fail" in ar, ar
    assert ("sel._domainkey.example.org", "TXT") not in dns.queries
