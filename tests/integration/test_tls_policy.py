"""smtp_tls_policy_maps end to end: the real hongyan server relaying to
aiosmtpd peers on loopback, with a per-destination TLS policy (Postfix
TLS_README "TLS policy maps") in a texthash: table that overrides the
global smtp_tls_security_level for its next hop only.
"""
import os
import re

from conftest import wait_for
from dnsserver import SignedDNSServer
from smtppeer import Peer
from test_dane import dane_zone, make_server as dane_server, spki_sha256
from test_outbound import logs, make_server, sendmail

# Deferred mail stays put for the test's length.
SLOW_RETRY = {"minimal_backoff_time": "300s", "maximal_backoff_time": "600s"}


def policy_table(tmp_path, lines):
    path = tmp_path / "tls_policy"
    path.write_text("".join(l + "\n" for l in lines))
    os.chmod(path, 0o644)
    return "texthash:%s" % path


def relay_server(server_factory, tmp_path, peer, lines, extra=None):
    settings = {
        "relayhost": "[127.0.0.1]:%d" % peer.port,
        "smtp_tls_policy_maps": policy_table(tmp_path, lines),
    }
    settings.update(SLOW_RETRY)
    settings.update(extra or {})
    return make_server(server_factory, None, settings)


def test_encrypt_policy_defers_when_the_peer_has_no_starttls(server_factory, tmp_path):
    with Peer() as relay:
        srv = relay_server(server_factory, tmp_path, relay,
                           ["[127.0.0.1]:%d encrypt" % relay.port],
                           {"smtp_tls_security_level": "may"})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        text = logs(srv)
        assert "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]" in text
        assert not relay.messages


def test_encrypt_policy_uses_tls_although_the_global_level_is_none(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True) as relay:
        srv = relay_server(server_factory, tmp_path, relay,
                           ["[127.0.0.1]:%d encrypt" % relay.port],
                           {"smtp_tls_security_level": "none"})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        # The per-destination level did the STARTTLS the global "none" would not.
        assert re.search(r"\w+ TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d"
                         % relay.port, logs(srv)), logs(srv)


def test_secure_match_names(server_factory, tmp_path):
    # The peer's certificate names relay.example.com (and 127.0.0.1).
    with Peer(tmp=tmp_path, tls=True, name="relay.example.com") as relay:
        os.chmod(relay.cert, 0o644)
        ca = {"smtp_tls_security_level": "may", "smtp_tls_CAfile": str(relay.cert)}
        srv = relay_server(server_factory, tmp_path, relay,
                           ["[127.0.0.1]:%d secure match=other.example.com:relay.example.com"
                            % relay.port], ca)
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        assert "Verified TLS connection established to 127.0.0.1[127.0.0.1]" in logs(srv)
        srv.stop()
        # No listed name is the certificate's: deferred, nothing sent.
        srv2 = relay_server(server_factory, tmp_path, relay,
                            ["[127.0.0.1]:%d secure match=other.example.com:.example.org"
                             % relay.port], ca)
        sendmail(srv2, ["carol@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv2), timeout=20), logs(srv2)
        assert "Verified TLS connection established" not in logs(srv2)
        assert "certificate verification failed" in logs(srv2), logs(srv2)
        assert len(relay.messages) == 1


def test_policy_for_another_destination_does_not_apply(server_factory, tmp_path):
    with Peer() as relay:
        srv = relay_server(server_factory, tmp_path, relay, [
            "[127.0.0.1]:%d encrypt" % (relay.port + 1 if relay.port < 65535 else relay.port - 1),
            "[127.0.0.1] encrypt",
            "127.0.0.1 secure",
            "example.net encrypt",
        ], {"smtp_tls_security_level": "may"})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert "TLS is required" not in logs(srv)


def test_malformed_policy_defers_with_a_clear_log_line(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True) as relay:
        key = "[127.0.0.1]:%d" % relay.port
        srv = relay_server(server_factory, tmp_path, relay, ["%s encrypted" % key],
                           {"smtp_tls_security_level": "may"})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        text = logs(srv)
        assert ('smtp_tls_policy_maps entry %s = "encrypted": unknown security level "encrypted"'
                % key) in text, text
        assert re.search(r"to=<bob@example\.net>, .*dsn=4\.7\.5, status=deferred", text), text
        # Never a silent downgrade: no session with the peer at all.
        assert relay.connections_after_start == 0
        assert not relay.messages


def test_mx_domain_policy_overrides_global_dane(server_factory, tmp_path):
    """MX delivery looks up the recipient domain: an encrypt entry for it
    means no TLSA lookup, so a bogus TLSA RRset (which defers at the global
    dane level, see test_dane.py) does not stop the mail; TLS is still required."""
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        zone.corrupt("_%d._tcp.mx.dane.test" % mx.port, "TLSA")
        with SignedDNSServer([zone]) as dns:
            srv = dane_server(server_factory, tmp_path, dns, zone, mx.port, {
                "smtp_tls_security_level": "dane",
                "smtp_tls_policy_maps": policy_table(tmp_path, ["dane.test encrypt"]),
            })
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
            text = logs(srv)
            assert "TLSA lookup error" not in text, text
            assert "TLS connection established to mx.dane.test[127.0.0.1]" in text, text
            assert len(mx.messages) == 1


def test_parent_domain_entry_matches_subdomains_only(server_factory, tmp_path):
    """".dane.test" is for subdomains: the domain dane.test itself keeps the
    global dane level, so the bogus TLSA RRset still defers it."""
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = dane_zone(mx.port, {"mx.dane.test": ["3 1 1 " + spki_sha256(mx.cert)]})
        zone.corrupt("_%d._tcp.mx.dane.test" % mx.port, "TLSA")
        with SignedDNSServer([zone]) as dns:
            srv = dane_server(server_factory, tmp_path, dns, zone, mx.port, {
                "smtp_tls_security_level": "dane",
                "smtp_tls_policy_maps": policy_table(tmp_path, [".dane.test encrypt"]),
            })
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            assert "TLSA lookup error for _%d._tcp.mx.dane.test" % mx.port in logs(srv)
            assert mx.connections_after_start == 0
