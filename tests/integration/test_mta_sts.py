"""MTA-STS (RFC 8461) end to end: the real hongyan server delivering by MX
to aiosmtpd peers, with the _mta-sts TXT record, the MX and mta-sts.DOMAIN
served by the test DNS server, and the policy served over HTTPS by a Python
http.server on a random loopback port (smtp_mta_sts_port). Certificates are
self-signed ones from smtppeer.make_cert, trusted through smtp_tls_CAfile.

The policy domain is example.net (unbound answers .test names itself).
"""
import http.server
import os
import re
import ssl
import threading
import time

from conftest import free_port, wait_for
from dnsserver import DNSServer
from smtppeer import Peer, make_cert
from test_outbound import LOCAL, logs, queue_ids, sendmail

DOMAIN = "example.net"
SLOW_RETRY = {"minimal_backoff_time": "300s", "maximal_backoff_time": "600s"}


def policy_text(mode, mx=("mx.example.net",), max_age=86400, crlf=False):
    lines = ["version: STSv1", "mode: %s" % mode] + ["mx: %s" % m for m in mx] + \
            ["max_age: %d" % max_age, "future_key: ignored"]
    end = "\r\n" if crlf else "\n"
    return end.join(lines) + end


class PolicyServer:
    """HTTPS on 127.0.0.1 serving /.well-known/mta-sts.txt; status, content type
    and body can be changed while it runs; requests counts the fetches."""

    def __init__(self, tmp, name="mta-sts.example.net"):
        self.cert, self.key = make_cert(tmp, name)
        os.chmod(self.cert, 0o644)
        self.port = free_port()
        self.status = 200
        self.ctype = "text/plain; charset=utf-8"
        self.body = policy_text("enforce")
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Host")))
                data = server.body.encode()
                self.send_response(server.status)
                self.send_header("Content-Type", server.ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.thread:
            self.httpd.shutdown()
            self.thread.join(timeout=10)
            self.thread = None
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def zone(txt_id="1", mx_host="mx.example.net", txt=True):
    z = {
        DOMAIN: [("MX", (10, mx_host))],
        mx_host: [("A", "127.0.0.1")],
        "mta-sts." + DOMAIN: [("A", "127.0.0.1")],
    }
    if txt:
        z["_mta-sts." + DOMAIN] = [("TXT", "v=STSv1; id=%s;" % txt_id)]
    return z


def ca_bundle(tmp_path, *certs):
    path = tmp_path / "ca.pem"
    path.write_bytes(b"".join(c.read_bytes() for c in certs))
    os.chmod(path, 0o644)
    return path


def sts_server(server_factory, dns, mx, https, ca, extra=None):
    settings = dict(LOCAL)
    settings.update(SLOW_RETRY)
    settings.update({
        "dns_resolver": dns.address,
        "smtp_tcp_port": str(mx.port),
        "smtp_mta_sts_port": str(https.port),
        "smtp_tls_CAfile": str(ca),
    })
    settings.update(extra or {})
    return server_factory(extra=settings)


def queue_list(srv):
    return srv.cmd("queue", "list").stdout


def sts_txt_queries(dns):
    return sum(1 for name, qtype in dns.queries
               if name == "_mta-sts." + DOMAIN and str(qtype).upper() == "TXT")


def test_enforce_delivers_over_verified_tls(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.example.net") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("enforce", mx=("*.example.net",), crlf=True)
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, mx.cert, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        text = logs(srv)
        assert "MTA-STS policy for example.net applies: mode enforce, id 1" in text, text
        assert "Verified TLS connection established to mx.example.net[127.0.0.1]" in text, text
        assert https.requests == [("/.well-known/mta-sts.txt",
                                   "mta-sts.example.net:%d" % https.port)]
        # The policy is kept under the data directory.
        cached = (srv.data / "mta-sts" / DOMAIN).read_text()
        assert cached.startswith("id: 1\n") and "mode: enforce" in cached
        # A second message: the TXT record is asked again, the policy is not fetched again.
        before = sts_txt_queries(dns)
        time.sleep(2.5)  # past the TXT record's TTL (1 s, counted in whole seconds)
        sendmail(srv, ["carol@example.net"])
        assert wait_for(lambda: len(mx.messages) == 2, timeout=20), logs(srv)
        assert sts_txt_queries(dns) > before
        assert len(https.requests) == 1
        assert "MTA-STS policy for example.net applies: mode enforce, id 1 (cached)" in logs(srv)


def test_enforce_never_connects_to_an_mx_outside_the_policy(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.example.net") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("enforce", mx=("mail.example.org", "*.other.example.net"))
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, mx.cert, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert mx.connections_after_start == 0
        assert not mx.messages
        listing = queue_list(srv)
        assert "MTA-STS" in listing and "bob@example.net" in listing, listing
        assert re.search(r"to=<bob@example\.net>.*dsn=4\.7\.5, status=deferred \(MTA-STS policy "
                         r"for example\.net \(enforce\): no MX host matches", logs(srv)), logs(srv)


def test_enforce_defers_without_starttls(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert not mx.messages
        listing = queue_list(srv)
        assert "MTA-STS policy for example.net (enforce)" in listing, listing
        assert "TLS is required" in listing, listing


def test_enforce_defers_on_a_certificate_for_another_name(server_factory, tmp_path):
    # Trusted (in smtp_tls_CAfile) but naming another host.
    with Peer(tmp=tmp_path, tls=True, name="wrong.example.org") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, mx.cert, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert not mx.messages
        listing = queue_list(srv)
        assert "MTA-STS policy for example.net (enforce)" in listing, listing
        assert "certificate" in listing, listing


def test_enforce_defers_on_an_untrusted_certificate(server_factory, tmp_path):
    # The right name, but neither the system CAs nor smtp_tls_CAfile vouch for it.
    with Peer(tmp=tmp_path, tls=True, name="mx.example.net") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert not mx.messages
        assert "MTA-STS policy for example.net (enforce)" in queue_list(srv)


def test_testing_mode_delivers_and_logs(server_factory, tmp_path):
    # Plain MX, not in the policy: enforce would refuse twice over; testing delivers.
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("testing", mx=("mail.example.org",))
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert len(mx.messages) == 1
        text = logs(srv)
        assert ("MTA-STS policy for example.net (testing): MX host mx.example.net is not in the "
                "policy; delivering anyway") in text, text
        assert re.search(r"MTA-STS policy for example\.net \(testing\): .* did not do TLS", text)


def test_testing_mode_logs_a_certificate_for_another_name(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="wrong.example.org") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("testing")
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, mx.cert, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert re.search(r"MTA-STS policy for example\.net \(testing\): certificate of "
                         r"mx\.example\.net\[127\.0\.0\.1\]:\d+ not valid: .*hostname mismatch",
                         logs(srv)), logs(srv)


def test_mode_none_is_ignored(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("none", mx=())
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert "fetched policy for example.net: id 1, mode none" in logs(srv)
        assert "MTA-STS policy for example.net applies" not in logs(srv)


def test_policy_404_means_no_policy(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.status = 404
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert len(https.requests) == 1
        assert "MTA-STS: policy fetch for example.net failed: " in logs(srv)
        assert "HTTP status 404" in logs(srv)


def test_wrong_content_type_and_untrusted_https_mean_no_policy(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.ctype = "text/html"
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert "Content-Type is text/html, not text/plain" in logs(srv)
        srv.stop()
    # The HTTPS server's certificate is not trusted: no policy (sts-webpki-invalid).
    with Peer() as mx, PolicyServer(tmp_path, name="mta-sts.example.net") as https, \
            DNSServer(zone(txt_id="2"), ttl=1) as dns:
        other, _ = make_cert(tmp_path, "unrelated.example.org")
        srv2 = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, other))
        sendmail(srv2, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv2), timeout=20), logs(srv2)
        assert "MTA-STS: policy fetch for example.net failed" in logs(srv2)
        assert not https.requests


def test_invalid_policy_means_no_policy(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = "version: STSv1\nmode: enforce\nmax_age: 86400\n"  # no mx
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert "invalid policy from https://mta-sts.example.net/.well-known/mta-sts.txt: " \
               "no mx field" in logs(srv)


def test_missing_txt_record_means_no_fetch(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, \
            DNSServer(zone(txt=False), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert sts_txt_queries(dns) >= 1
        assert not https.requests
        assert "MTA-STS policy" not in logs(srv)


def test_mta_sts_off_and_relayhost_are_not_affected(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert),
                         {"smtp_mta_sts": "no"})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert sts_txt_queries(dns) == 0 and not https.requests
        srv.stop()
        srv2 = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert),
                          {"relayhost": "[127.0.0.1]:%d" % mx.port})
        sendmail(srv2, ["carol@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv2), timeout=20), logs(srv2)
        assert sts_txt_queries(dns) == 0 and not https.requests


def test_cached_policy_applies_while_the_https_server_is_down(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.example.net") as mx, \
            DNSServer(zone(), ttl=1) as dns:
        https = PolicyServer(tmp_path).start()
        ca = ca_bundle(tmp_path, mx.cert, https.cert)
        srv = sts_server(server_factory, dns, mx, https, ca)
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert wait_for(lambda: (srv.data / "mta-sts" / DOMAIN).exists(), timeout=10)
        srv.stop()
        https.stop()
        # A new id that cannot be fetched, and an MX the cached policy does not name; the
        # restarted server reads the cache from disk and keeps enforcing it (RFC 8461 5.1).
        dns.set("_mta-sts." + DOMAIN, [("TXT", "v=STSv1; id=2;")])
        dns.set(DOMAIN, [("MX", (10, "evil.example.net"))])
        dns.set("evil.example.net", [("A", "127.0.0.1")])
        base = mx.connections
        srv.start()
        sendmail(srv, ["carol@example.net"])
        assert wait_for(lambda: "to=<carol@example.net>" in logs(srv)
                        and "status=deferred" in logs(srv), timeout=40), logs(srv)
        text = logs(srv)
        assert "the cached policy stays in force" in text, text
        assert "MTA-STS policy for example.net applies: mode enforce, id 1 (cached)" in text
        assert mx.connections == base
        assert "MTA-STS" in queue_list(srv)


def test_changed_id_fetches_the_new_policy_before_delivering(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("testing", mx=("mail.example.org",))
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert len(https.requests) == 1
        # The domain publishes an enforce policy with a new id.
        https.body = policy_text("enforce", mx=("mail.example.org",))
        dns.set("_mta-sts." + DOMAIN, [("TXT", "v=STSv1; id=2;")])
        time.sleep(2.5)  # past the old TXT record's TTL
        sendmail(srv, ["carol@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert len(https.requests) == 2
        assert len(mx.messages) == 1
        assert "fetched policy for example.net: id 2, mode enforce" in logs(srv)
        assert "MTA-STS policy for example.net (enforce)" in queue_list(srv)
        assert (srv.data / "mta-sts" / DOMAIN).read_text().startswith("id: 2\n")


# ---- hongyan doctor: the domain's own MTA-STS and TLS-RPT records ----


def doctor_checks(srv, mx):
    r = srv.cmd("doctor", DOMAIN, "--json", "--public-address", "192.0.2.1",
                "--probe", "127.0.0.1:%d" % mx.port)
    assert "AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    import json
    doc = json.loads(r.stdout)
    return r, {c["name"]: c for c in doc["checks"]}


def test_doctor_checks_the_policy_against_the_mx(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        dns.set("_smtp._tls." + DOMAIN, [("TXT", "v=TLSRPTv1; rua=mailto:tls@example.net")])
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        r, checks = doctor_checks(srv, mx)
        sts, rpt = checks["mta-sts"], checks["tlsrpt"]
        assert sts["status"] == "ok", r.stdout
        assert "id 1, mode enforce, max_age 86400, mx: mx.example.net" in sts["found"]
        assert rpt["status"] == "ok" and "rua=mailto:tls@example.net" in rpt["found"], r.stdout
        # An MX the enforced policy does not name: senders would refuse it.
        https.body = policy_text("enforce", mx=("mail.example.org",))
        r, checks = doctor_checks(srv, mx)
        assert checks["mta-sts"]["status"] == "FAIL", r.stdout
        assert "MX host(s) not in the policy: mx.example.net" in checks["mta-sts"]["found"]
        # The policy file is not there.
        https.status = 404
        r, checks = doctor_checks(srv, mx)
        assert checks["mta-sts"]["status"] == "FAIL", r.stdout
        assert "the policy cannot be fetched" in checks["mta-sts"]["found"]
        assert "HTTP status 404" in checks["mta-sts"]["found"]
        assert r.returncode == 1


def test_doctor_without_records_prints_what_to_publish(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, \
            DNSServer(zone(txt=False), ttl=1) as dns:
        dns.set("_smtp._tls." + DOMAIN, [("TXT", "v=TLSRPTv1; rua=ftp://x")])
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        r, checks = doctor_checks(srv, mx)
        assert checks["mta-sts"]["status"] == "ok", r.stdout
        assert "no MTA-STS record at _mta-sts.example.net" in checks["mta-sts"]["found"]
        advice = " ".join(checks["mta-sts"]["advice"])
        assert re.search(r'_mta-sts\.example\.net\. IN TXT "v=STSv1; id=\d{14}"', advice), advice
        assert '"mx: mx.example.net"' in advice, advice
        assert checks["tlsrpt"]["status"] == "FAIL", r.stdout
        assert checks["tlsrpt"]["records_to_publish"] == [
            '_smtp._tls.example.net. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.net"']
        assert not https.requests


def test_policy_is_refreshed_in_the_background_and_expires(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        https.body = policy_text("testing", max_age=6)
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        assert len(https.requests) == 1
        # Past half its max_age: the cached policy serves this delivery, and is fetched again
        # in the background (same id).
        time.sleep(4.2)
        sendmail(srv, ["carol@example.net"])
        assert wait_for(lambda: logs(srv).count("status=sent") == 2, timeout=20), logs(srv)
        assert "MTA-STS policy for example.net applies: mode testing, id 1 (cached)" in logs(srv)
        assert wait_for(lambda: len(https.requests) == 2, timeout=10), logs(srv)
        # Past max_age with the server down and no way to refresh: the policy is gone.
        https.stop()
        time.sleep(7.5)
        sendmail(srv, ["dave@example.net"])
        assert wait_for(lambda: logs(srv).count("status=sent") == 3, timeout=30), logs(srv)
        assert "cached policy for example.net (id 1) expired (max_age)" in logs(srv)
        assert not (srv.data / "mta-sts" / DOMAIN).exists()
