"""DMARC aggregate reports (RFC 7489 7.2, appendix C) end to end: mail from
outside mynetworks (smtplib from 127.0.0.1, mynetworks elsewhere), signed
or not by dkimpy, checked by the running server with
smtpd_dmarc_reporting = yes; `hongyan report send` (while the server
runs) queues one report per policy domain, delivered by MX to an aiosmtpd
peer. The test parses it back: the Subject, the gzip'd XML (well-formed,
the policy published, the counts per source and result), the external
destination check of section 7.1 and the "!" size limit.
"""
import email
import email.policy
import gzip
import xml.etree.ElementTree as ET

from conftest import wait_for
from dnsserver import DNSServer
from smtppeer import Peer
from test_inbound_auth import key, message, send, sign  # noqa: F401 (key is a fixture)

RUA = ("v=DMARC1; p=reject; rua=mailto:dmarc@example.org,"
       "mailto:ext@reports.example.com!10m, mailto:noauth@other.example.net")


def report_zone(keyrec):
    return {
        "example.org": [("TXT", "v=spf1 ip4:127.0.0.1 -all"), ("MX", (10, "mx.example.org"))],
        "mx.example.org": [("A", "127.0.0.1")],
        "sel._domainkey.example.org": [("TXT", keyrec)],
        "_dmarc.example.org": [("TXT", RUA)],
        # an external destination that agrees (RFC 7489 7.1), and one that does not
        "reports.example.com": [("MX", (10, "mx.example.org"))],
        "example.org._report._dmarc.reports.example.com": [("TXT", "v=DMARC1")],
        "other.example.net": [("MX", (10, "mx.example.org"))],
        # a domain whose rua= limit (1 byte) no report fits in
        "example.net": [("TXT", "v=spf1 ip4:192.0.2.1 -all"), ("MX", (10, "mx.example.org"))],
        "_dmarc.example.net": [("TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.net!1")],
    }


def test_aggregate_report_counts_and_destinations(server_factory, key):  # noqa: F811
    with Peer() as mx, DNSServer(report_zone(key[1])) as dns:
        srv = server_factory({"dns_resolver": dns.address, "mynetworks": "192.0.2.0/24",
                              "smtpd_dmarc_reporting": "yes", "smtp_tcp_port": str(mx.port)})
        # Two that pass (signed, SPF pass), one that fails (unsigned, SPF fails for example.net).
        for i in range(2):
            send(srv, "alice@example.org", sign(message("example.org", subject="ok%d" % i),
                                                key[0]))
        send(srv, "alice@example.net", message("example.org", subject="forged"))
        send(srv, "bob@example.net", message("example.net", subject="limited"))
        assert wait_for(lambda: len(srv.messages("example.com", "u")) == 4, timeout=30)
        day_files = list((srv.data / "dmarc").iterdir())
        assert len(day_files) == 1, day_files

        r = srv.cmd("report", "send")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 DMARC report(s) queued" in r.stdout, r.stdout
        # The organisation's own address, and the external one that agreed; not the other.
        # (One transaction per recipient domain: they are different next hops.)
        assert wait_for(lambda: len(mx.messages) == 2, timeout=30), srv.log_text()[-3000:]
        assert sorted(t for m in mx.messages for t in m.rcpt_tos) == [
            "dmarc@example.org", "ext@reports.example.com"]
        rep = mx.messages[0]
        assert rep.mail_from == "postmaster@local.test" or rep.mail_from.startswith("postmaster@")
        msg = email.message_from_bytes(rep.data, policy=email.policy.default)
        parts = list(msg.iter_attachments())
        assert len(parts) == 1 and parts[0].get_content_type() == "application/gzip"
        assert parts[0].get_filename().endswith(".xml.gz")
        root = ET.fromstring(gzip.decompress(parts[0].get_payload(decode=True)))
        assert root.tag == "feedback"
        report_id = root.findtext("report_metadata/report_id")
        submitter = srv.cmd("config", "-x", "mydomain").stdout.split("=", 1)[1].strip()
        assert msg["Subject"] == "Report Domain: example.org Submitter: %s Report-ID: %s" % (
            submitter, report_id)
        assert msg["From"] == srv.cmd("config", "-x", "dmarc_report_sender").stdout.split(
            "=", 1)[1].strip()
        assert root.findtext("report_metadata/org_name") == submitter
        begin = int(root.findtext("report_metadata/date_range/begin"))
        end = int(root.findtext("report_metadata/date_range/end"))
        assert begin % 86400 == 0 and end == begin + 86399
        pub = root.find("policy_published")
        assert pub.findtext("domain") == "example.org" and pub.findtext("p") == "reject"
        assert pub.findtext("pct") == "100" and pub.findtext("adkim") == "r"
        rows = {}
        for rec in root.findall("record"):
            row = rec.find("row")
            ev = row.find("policy_evaluated")
            assert row.findtext("source_ip") == "127.0.0.1"
            assert rec.findtext("identifiers/header_from") == "example.org"
            rows[(ev.findtext("dkim"), ev.findtext("spf"))] = (int(row.findtext("count")), rec)
        assert set(rows) == {("pass", "pass"), ("fail", "fail")}, rows
        assert rows[("pass", "pass")][0] == 2 and rows[("fail", "fail")][0] == 1
        passing = rows[("pass", "pass")][1]
        assert passing.findtext("auth_results/dkim/domain") == "example.org"
        assert passing.findtext("auth_results/dkim/result") == "pass"
        assert passing.findtext("auth_results/spf/result") == "pass"
        failing = rows[("fail", "fail")][1]
        assert failing.findtext("row/policy_evaluated/disposition") == "none"
        assert failing.findtext("auth_results/spf/domain") == "example.net"
        assert failing.findtext("auth_results/spf/result") == "fail"
        # Sent (and the over-limit one dropped): nothing is left.
        assert not list((srv.data / "dmarc").iterdir())
        assert "over the 1-byte limit of dmarc@example.net" in srv.log_text() + r.stderr
        assert "noauth@other.example.net does not take reports" in srv.log_text() + r.stderr
        r = srv.cmd("report", "send")
        assert "0 DMARC report(s) queued" in r.stdout


def test_rejected_mail_is_reported_with_its_disposition(server_factory, key):  # noqa: F811
    with Peer() as mx, DNSServer(report_zone(key[1])) as dns:
        srv = server_factory({"dns_resolver": dns.address, "mynetworks": "192.0.2.0/24",
                              "smtpd_dmarc_reporting": "yes", "smtpd_dmarc_policy": "reject",
                              "smtp_tcp_port": str(mx.port)})
        import smtplib
        try:
            send(srv, "alice@example.net", message("example.org", subject="forged"))
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550
        else:
            raise AssertionError("not rejected")
        r = srv.cmd("report", "send")
        assert r.returncode == 0 and "1 DMARC report(s) queued" in r.stdout, r.stdout + r.stderr
        assert wait_for(lambda: mx.messages, timeout=30)
        msg = email.message_from_bytes(mx.messages[0].data, policy=email.policy.default)
        part = list(msg.iter_attachments())[0]
        root = ET.fromstring(gzip.decompress(part.get_payload(decode=True)))
        assert root.findtext("record/row/policy_evaluated/disposition") == "reject"
        assert root.findtext("record/row/count") == "1"


def test_reporting_off_records_nothing(server_factory, key):  # noqa: F811
    with DNSServer(report_zone(key[1])) as dns:
        srv = server_factory({"dns_resolver": dns.address, "mynetworks": "192.0.2.0/24"})
        send(srv, "alice@example.org", sign(message("example.org"), key[0]))
        assert wait_for(lambda: len(srv.messages("example.com", "u")) == 1, timeout=30)
        assert not (srv.data / "dmarc").exists()
