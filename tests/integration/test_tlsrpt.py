"""TLS reporting (RFC 8460) end to end: deliveries by MX under MTA-STS
policies (the HTTPS policy server and zone of test_mta_sts.py) are
recorded; `hongyan report send`, run while the server runs, queues one
report per policy domain, which is delivered by MX like any mail to the
rua= address of _smtp._tls.DOMAIN (here the same aiosmtpd peer). The test
parses the report back: the multipart/report message, the gzip'd JSON and
its RFC 8460 section 4 fields and counts.
"""
import email
import email.policy
import gzip
import json

from conftest import wait_for
from dnsserver import DNSServer
from smtppeer import Peer
from test_mta_sts import DOMAIN, PolicyServer, ca_bundle, policy_text, sts_server, zone
from test_outbound import logs, sendmail

RUA = "tlsrpt@reports.example.com"
NO_REUSE = {"smtp_connection_cache_time_limit": "0s"}


def report_zone(**kw):
    z = zone(**kw)
    z["_smtp._tls." + DOMAIN] = [("TXT", "v=TLSRPTv1; rua=mailto:%s" % RUA)]
    z["reports.example.com"] = [("MX", (10, "mx.reports.example.com"))]
    z["mx.reports.example.com"] = [("A", "127.0.0.1")]
    return z


def reports(mx):
    return [m for m in mx.messages if RUA in m.rcpt_tos]


def send_reports(srv, mx, count=1):
    r = srv.cmd("report", "send")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: len(reports(mx)) >= count, timeout=20), logs(srv)
    return r


def parse_report(message):
    msg = email.message_from_bytes(message.data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == DOMAIN
    assert msg["TLS-Report-Submitter"] == "local.test"
    assert str(msg["Subject"]).startswith("Report Domain: %s Submitter: local.test Report-ID: "
                                          % DOMAIN)
    parts = [p for p in msg.iter_attachments()]
    assert len(parts) == 1
    part = parts[0]
    assert part.get_content_type() == "application/tlsrpt+gzip"
    assert part.get_filename().startswith("local.test!%s!" % DOMAIN)
    assert part.get_filename().endswith(".json.gz")
    return msg, json.loads(gzip.decompress(part.get_payload(decode=True)))


def check_schema(doc):
    assert set(doc) >= {"organization-name", "date-range", "contact-info", "report-id",
                        "policies"}
    assert doc["organization-name"] == "local.test"
    assert doc["contact-info"] == "postmaster@local.test"
    assert doc["date-range"]["start-datetime"].endswith("T00:00:00Z")
    assert doc["date-range"]["end-datetime"].endswith("T00:00:00Z")
    for p in doc["policies"]:
        assert p["policy"]["policy-domain"] == DOMAIN
        assert set(p["summary"]) == {"total-successful-session-count",
                                     "total-failure-session-count"}
        total = sum(d["failed-session-count"] for d in p.get("failure-details", []))
        assert total == p["summary"]["total-failure-session-count"]


def test_testing_policy_certificate_mismatch_is_reported(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="wrong.example.org") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(report_zone(), ttl=1) as dns:
        https.body = policy_text("testing", mx=("mx.example.net", "*.backup.example.net"))
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, mx.cert, https.cert),
                         NO_REUSE)
        assert srv.cmd("dkim", "keygen", "local.test").returncode == 0
        srv.reload()
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: len(mx.messages) == 1, timeout=20), logs(srv)
        sendmail(srv, ["carol@example.net"])
        assert wait_for(lambda: len(mx.messages) == 2, timeout=20), logs(srv)
        r = send_reports(srv, mx)
        assert "1 TLS report(s) queued" in r.stdout
        rep = reports(mx)
        assert len(rep) == 1
        assert rep[0].mail_from == "postmaster@local.test"
        msg, doc = parse_report(rep[0])
        assert "DKIM-Signature" in msg and "d=local.test" in str(msg["DKIM-Signature"])
        check_schema(doc)
        assert len(doc["policies"]) == 1
        p = doc["policies"][0]
        assert p["policy"]["policy-type"] == "sts"
        assert p["policy"]["policy-string"] == ["version: STSv1", "mode: testing",
                                                "mx: mx.example.net", "mx: *.backup.example.net",
                                                "max_age: 86400"]
        assert p["policy"]["mx-host"] == ["mx.example.net", "*.backup.example.net"]
        assert p["summary"] == {"total-successful-session-count": 0,
                                "total-failure-session-count": 2}
        assert p["failure-details"] == [{"result-type": "certificate-host-mismatch",
                                         "receiving-ip": "127.0.0.1",
                                         "receiving-mx-hostname": "mx.example.net",
                                         "failed-session-count": 2}]
        # Sent: nothing is pending any more.
        r = srv.cmd("report", "send")
        assert r.returncode == 0 and "0 TLS report(s) queued" in r.stdout, r.stdout


def test_enforce_failures_and_successes_are_counted(server_factory, tmp_path):
    with Peer() as mx, PolicyServer(tmp_path) as https, DNSServer(report_zone(), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert),
                         NO_REUSE)
        # No STARTTLS under enforce: deferred, starttls-not-supported.
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        # A policy naming another MX: validation-failure, no connection.
        https.body = policy_text("enforce", mx=("mail.example.org",))
        dns.set("_mta-sts." + DOMAIN, [("TXT", "v=STSv1; id=2;")])
        import time
        time.sleep(2.5)  # the TXT record's TTL
        sendmail(srv, ["carol@example.net"])
        assert wait_for(lambda: logs(srv).count("status=deferred") >= 2, timeout=20), logs(srv)
        send_reports(srv, mx)
        _, doc = parse_report(reports(mx)[0])
        check_schema(doc)
        by_mx = {tuple(p["policy"]["mx-host"]): p for p in doc["policies"]}
        first = by_mx[("mx.example.net",)]
        assert first["summary"]["total-failure-session-count"] == 1
        assert first["failure-details"][0]["result-type"] == "starttls-not-supported"
        second = by_mx[("mail.example.org",)]
        assert second["failure-details"] == [{"result-type": "validation-failure",
                                              "receiving-mx-hostname": "mx.example.net",
                                              "failed-session-count": 1}]


def test_policy_fetch_error_is_reported_as_no_policy_found(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.example.net") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(report_zone(), ttl=1) as dns:
        https.status = 404
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        send_reports(srv, mx)
        _, doc = parse_report(reports(mx)[0])
        check_schema(doc)
        assert len(doc["policies"]) == 1
        p = doc["policies"][0]
        assert p["policy"]["policy-type"] == "no-policy-found"
        assert p["summary"] == {"total-successful-session-count": 1,
                                "total-failure-session-count": 1}
        assert p["failure-details"][0]["result-type"] == "sts-policy-fetch-error"


def test_no_tlsrpt_record_no_report_and_reporting_off(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="mx.example.net") as mx, \
            PolicyServer(tmp_path) as https, DNSServer(zone(), ttl=1) as dns:
        srv = sts_server(server_factory, dns, mx, https, ca_bundle(tmp_path, mx.cert, https.cert))
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        journal = srv.data / "tlsrpt" / "journal"
        assert wait_for(journal.exists, timeout=5)
        r = srv.cmd("report", "send")
        assert r.returncode == 0 and "0 TLS report(s) queued" in r.stdout, r.stdout + r.stderr
        assert not journal.exists() and not list((srv.data / "tlsrpt").glob("sending.*"))
        srv.stop()
        srv2 = sts_server(server_factory, dns, mx, https,
                          ca_bundle(tmp_path, mx.cert, https.cert), {"smtp_tls_reporting": "no"})
        sendmail(srv2, ["carol@example.net"])
        assert wait_for(lambda: "status=sent" in logs(srv2), timeout=20), logs(srv2)
        assert not (srv2.data / "tlsrpt" / "journal").exists()


def test_dane_tlsa_mismatch_is_reported_as_tlsa(server_factory, tmp_path):
    """DANE (smtp_tls_security_level = dane, a signed zone): a TLSA record that
    matches nothing is policy-type tlsa, result-type tlsa-invalid."""
    from dnsserver import SignedDNSServer, SignedZone
    from test_dane import make_server as dane_server
    with Peer(tmp=tmp_path, tls=True, name="mx.dane.test") as mx:
        zone = SignedZone("dane.test", {
            "dane.test": [("MX", "10 mx.dane.test.")],
            "mx.dane.test": [("A", "127.0.0.1")],
            "_%d._tcp.mx.dane.test" % mx.port: [("TLSA", "3 1 1 " + "ab" * 32)],
            "_smtp._tls.dane.test": [("TXT", '"v=TLSRPTv1; rua=mailto:tls@reports.dane.test"')],
            # the report itself goes to a host without TLSA records (may)
            "reports.dane.test": [("MX", "10 mx2.dane.test.")],
            "mx2.dane.test": [("A", "127.0.0.1")],
        })
        with SignedDNSServer([zone]) as dns:
            srv = dane_server(server_factory, tmp_path, dns, zone, mx.port, NO_REUSE)
            sendmail(srv, ["bob@dane.test"])
            assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
            r = srv.cmd("report", "send")
            assert r.returncode == 0 and "1 TLS report(s) queued" in r.stdout, r.stdout + r.stderr
            assert wait_for(lambda: [m for m in mx.messages
                                     if "tls@reports.dane.test" in m.rcpt_tos], timeout=20), \
                logs(srv)
            rep = [m for m in mx.messages if "tls@reports.dane.test" in m.rcpt_tos][0]
            msg = email.message_from_bytes(rep.data, policy=email.policy.default)
            assert msg["TLS-Report-Domain"] == "dane.test"
            part = list(msg.iter_attachments())[0]
            doc = json.loads(gzip.decompress(part.get_payload(decode=True)))
            p = doc["policies"][0]
            assert p["policy"]["policy-type"] == "tlsa"
            assert p["policy"]["policy-domain"] == "dane.test"
            assert p["failure-details"][0]["result-type"] == "tlsa-invalid"
            assert p["failure-details"][0]["receiving-mx-hostname"] == "mx.dane.test"
