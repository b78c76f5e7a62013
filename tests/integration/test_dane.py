"""DANE for outbound SMTP (RFC 7672) end to end: hongyan at
smtp_tls_security_level = dane delivers to aiosmtpd peers with STARTTLS,
finding them through a DNSSEC-signed zone (tests/integration/dnsserver.py
SignedZone, signed with dnspython) that hongyan's own unbound validates
against the zone's DS, given as dnssec_trust_anchor_file.

Cases: a matching DANE-EE 3 1 1 record (delivered, "Verified ... dane:
matched 3 1 1"); a mismatching one (deferred, nothing sent), also with a
second MX that matches (delivered there); a TLSA record and a peer without
STARTTLS (deferred, never plain text); DANE-TA 2 0 1 with the MX name in
the certificate (delivered) or not (deferred); a bogus TLSA signature
(deferred); a signed zone without TLSA (NXDOMAIN proved by NSEC: may); an
unsigned zone (may); only unusable records (encrypt); no trust anchor
(may, with a warning).
"""
import datetime
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import wait_for
from dnsserver import SignedDNSServer, SignedZone
from smtppeer import Peer

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
    "smtp_tls_security_level": "dane",
    # A deferral stays deferred while the test looks.
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "600s",
}


def logs(srv):
    return srv.log_text()


def sendmail(srv, rcpts, sender="alice@local.test"):
    r = srv.cmd("sendmail", "-f", sender, *rcpts, input="Subject: dane\n\ntest\n")
    assert r.returncode == 0, r.stderr


def spki_sha256(cert_path):
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def make_ca_chain(directory, leaf_name):
    """A CA and a leaf for leaf_name signed by it; returns (chain file, key file, CA DER)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DANE test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, leaf_name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(leaf_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    chain = directory / ("%s-chain.pem" % leaf_name)
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) +
                      ca.public_bytes(serialization.Encoding.PEM))
    key_path = directory / ("%s-chain.key" % leaf_name)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_path, ca.public_bytes(serialization.Encoding.DER)


def dane_zone(port, tlsa, mx=(("mx.dane.test", "127.0.0.1"),)):
    """dane.test with MX hosts [(name, ip)] in order and TLSA records {host: [rdata text]}."""
    records = {"dane.test": [("MX", "%d %s." % (10 * (i + 1), h)) for i, (h, _) in enumerate(mx)]}
    for host, ip in mx:
        records[host] = [("A", ip)]
    for host, rdatas in tlsa.items():
        records["_%d._tcp.%s" % (port, host)] = [("TLSA", r) for r in rdatas]
    return SignedZone("dane.test", records)


def make_server(server_factory, tmp_path, dns, zone, port, extra=None):
    settings = dict(LOCAL)
    settings["dns_resolver"] = dns.address
    settings["smtp_tcp_port"] = str(port)
    if zone is not None:
        anchor = zone.write_anchor(tmp_path / "dane.test.ds")
        os.chmod(anchor, 0o644)
        settings["dnssec_trust_anchor_file"] = str(anchor)
    settings.update(extra or {})
    return server_factory(extra=settings)


def test_dane_ee_match_is_verified(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        with SignedDNSServer([zone]) as dns:
            # Postfix's DANE recipe sets smtp_dns_support_level = dnssec too.
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port,
                              {"smtp_dns_support_level": "dnssec"})
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert mx.messages and mx.messages[0].rcpt_tos == ["bob@dane.test"]
            assert ("Verified TLS connection established to mx.dane.test[127.0.0.1]:%d" % mx.port
                    in text), text
            assert "dane: matched 3 1 1" in text, text
            assert ("_%d._tcp.mx.dane.test" % mx.port, "TLSA") in dns.queries


def test_dane_ee_ignores_the_certificate_name(server_factory, tmp_path):
    """RFC 7672 3.1.1: DANE-EE(3) authenticates by the key alone."""
    with Peer(tmp=tmp_path, tls=True, name="unrelated.example.com") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            assert "dane: matched 3 1 1" in logs(srv)


def test_tlsa_mismatch_defers(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + "ab" * 32]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "Untrusted TLS connection established to mx.dane.test[127.0.0.1]" in text
            assert ("Server certificate not verified: host mx.dane.test[127.0.0.1]: "
                    "no TLSA record matched the certificate chain" in text), text
            assert not mx.messages


def test_tlsa_mismatch_tries_the_next_mx(server_factory, tmp_path):
    bad = Peer(tmp=tmp_path, tls=True, name="mx1.dane.test", hostname="127.0.0.2")
    with bad, Peer(tmp=tmp_path, tls=True, name="mx2.dane.test", port=bad.port) as good:
        zone = dane_zone(bad.port, {"mx1.dane.test": ["3 1 1 " + "cd" * 32],
                                    "mx2.dane.test": ["3 1 1 " + spki_sha256(good.cert)]},
                         mx=(("mx1.dane.test", "127.0.0.2"), ("mx2.dane.test", "127.0.0.1")))
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, bad.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "Server certificate not verified: host mx1.dane.test[127.0.0.2]" in text, text
            assert "relay=mx2.dane.test[127.0.0.1]:%d" % bad.port in text
            assert not bad.messages and len(good.messages) == 1


def test_tlsa_and_no_starttls_defers(server_factory, tmp_path):
    with Peer() as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + "ef" * 32]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            assert ("TLS is required, but was not offered by host mx.dane.test[127.0.0.1]"
                    in logs(srv))
            assert not mx.messages


def test_dane_ta_checks_the_mx_name(server_factory, tmp_path):
    chain, key, ca_der = make_ca_chain(tmp_path, "mx.dane.test")
    ta = "2 0 1 " + hashlib.sha256(ca_der).hexdigest()
    mx = Peer(tmp=tmp_path, tls=True, name="mx.dane.test")
    mx.context.load_cert_chain(str(chain), str(key))
    with mx:
        zone = dane_zone(mx.port, {"mx.dane.test": [ta]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            assert "dane: matched 2 0 1 at depth 1" in logs(srv), logs(srv)


def test_dane_ta_name_mismatch_defers(server_factory, tmp_path):
    chain, key, ca_der = make_ca_chain(tmp_path, "other.example.com")
    ta = "2 0 1 " + hashlib.sha256(ca_der).hexdigest()
    mx = Peer(tmp=tmp_path, tls=True, name="mx.dane.test")
    mx.context.load_cert_chain(str(chain), str(key))
    with mx:
        zone = dane_zone(mx.port, {"mx.dane.test": [ta]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            assert "Server certificate not verified: host mx.dane.test" in logs(srv), logs(srv)
            assert not mx.messages


def test_bogus_tlsa_defers(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        zone.corrupt("_%d._tcp.mx.dane.test" % mx.port, "TLSA")
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert ("TLSA lookup error for _%d._tcp.mx.dane.test: DNSSEC validation failed"
                    % mx.port in text), text
            assert "dsn=4.7.5" in text, text
            assert mx.connections_after_start == 0


def test_secure_mx_without_tlsa_is_may(server_factory, tmp_path):
    """NXDOMAIN for the TLSA name, proved by NSEC: opportunistic TLS."""
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "Untrusted TLS connection established to mx.dane.test" in text, text
            assert "dane:" not in text
            # unbound may answer the TLSA query from the NSEC records it
            # already validated (RFC 8198), so dns.queries need not show it.


def test_unsigned_zone_is_may(server_factory, tmp_path):
    """No trust anchor covers plain.test: insecure, so no TLSA lookup and may (plain text too)."""
    with Peer() as mx:
        signed = dane_zone(mx.port, {})
        plain = {"plain.test": [("MX", (10, "mx.plain.test"))],
                 "mx.plain.test": [("A", "127.0.0.1")],
                 "_%d._tcp.mx.plain.test" % mx.port: [("TLSA", (3, 1, 1, "ab" * 32))]}
        with SignedDNSServer([signed], zone=plain) as dns:
            srv = make_server(server_factory, tmp_path, dns, signed, mx.port)
            sendmail(srv, ["bob@plain.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            assert mx.messages
            assert ("_%d._tcp.mx.plain.test" % mx.port, "TLSA") not in dns.queries


def test_only_unusable_tlsa_is_encrypt(server_factory, tmp_path):
    """RFC 7672 2.2: PKIX-EE(1) is unusable; with nothing usable, TLS is still required."""
    with Peer() as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["1 1 1 " + "ab" * 32]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "no usable TLSA records for _%d._tcp.mx.dane.test" % mx.port in text, text
            assert "TLS is required, but was not offered by host mx.dane.test" in text
            assert not mx.messages


def test_no_trust_anchor_is_may_with_a_warning(server_factory, tmp_path):
    with Peer() as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + "ab" * 32]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, None, mx.port, {
                "dnssec_trust_anchor_file": str(tmp_path / "missing.key")})
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "smtp_tls_security_level = dane: no DNSSEC trust anchor" in text, text
            assert mx.messages


def test_dns_support_level_enabled_turns_dane_into_may(server_factory, tmp_path):
    with Peer() as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + "ab" * 32]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port,
                              {"smtp_dns_support_level": "enabled"})
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "dane: smtp_dns_support_level = enabled turns DNSSEC off" in text, text
            assert mx.messages


def test_bogus_mx_defers_at_dane(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        zone.corrupt("dane.test", "MX")
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            assert "name=dane.test type=MX: Host not found, try again" in logs(srv), logs(srv)
            assert mx.connections_after_start == 0


def test_may_does_not_validate(server_factory, tmp_path, monkeypatch):
    """Below dane nothing validates: bogus signatures (as from a forwarder
    that mangles them) do not stop mail, even with a trust anchor set."""
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + "ab" * 32]})
        zone.corrupt("dane.test", "MX")
        zone.corrupt("mx.dane.test", "A")
        anchor = zone.write_anchor(tmp_path / "env.ds")
        os.chmod(anchor, 0o644)
        monkeypatch.setenv("HONGYAN_DNS_TRUST_ANCHOR", str(anchor))
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port,
                              {"smtp_tls_security_level": "may"})
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            assert "Untrusted TLS connection established to mx.dane.test" in logs(srv)
            assert mx.messages


def test_reload_keeps_dane_working(server_factory, tmp_path):
    """A reload builds a new validating resolver; the old one goes with the old configuration."""
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["a@dane.test"])
            assert wait_for(lambda: len(mx.messages) == 1, timeout=20), logs(srv)
            srv.settings["smtp_helo_name"] = "reloaded.local.test"
            srv.reload()
            assert wait_for(lambda: "reload: configuration" in logs(srv), timeout=10)
            sendmail(srv, ["b@dane.test"])
            assert wait_for(lambda: len(mx.messages) == 2, timeout=20), logs(srv)
            assert logs(srv).count("dane: matched 3 1 1") == 2, logs(srv)
            assert mx.ehlo_names[-1] == "reloaded.local.test"


def test_cname_mx_host_uses_the_expanded_name(server_factory, tmp_path):
    """RFC 7672 2.2.2: the MX host is an alias; TLSA at the target, and the
    DANE-TA name check accepts the MX host name as found (3.2.2)."""
    chain, key, ca_der = make_ca_chain(tmp_path, "mx.dane.test")
    mx = Peer(tmp=tmp_path, tls=True, name="mx.dane.test")
    mx.context.load_cert_chain(str(chain), str(key))
    with mx:
        records = {"dane.test": [("MX", "10 mx.dane.test.")],
                   "mx.dane.test": [("CNAME", "host.dane.test.")],
                   "host.dane.test": [("A", "127.0.0.1")],
                   "_%d._tcp.host.dane.test" % mx.port:
                       [("TLSA", "2 0 1 " + hashlib.sha256(ca_der).hexdigest())]}
        zone = SignedZone("dane.test", records)
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            assert "dane: matched 2 0 1 at depth 1" in logs(srv), logs(srv)
            assert ("_%d._tcp.host.dane.test" % mx.port, "TLSA") in dns.queries


def test_cname_mx_host_falls_back_to_the_original_name(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        records = {"dane.test": [("MX", "10 mx.dane.test.")],
                   "mx.dane.test": [("CNAME", "host.dane.test.")],
                   "host.dane.test": [("A", "127.0.0.1")],
                   "_%d._tcp.mx.dane.test" % mx.port:
                       [("TLSA", "3 1 1 " + spki_sha256(mx.cert))]}
        zone = SignedZone("dane.test", records)
        with SignedDNSServer([zone]) as dns:
            srv = make_server(server_factory, tmp_path, dns, zone, mx.port)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            assert "dane: matched 3 1 1" in logs(srv), logs(srv)
