"""Delay notices (delay_warning_time) and SMTPUTF8 towards a peer that lacks
it, end to end: the real hongyan server relaying through an aiosmtpd peer
reached by `relayhost = [127.0.0.1]:PORT`.

The sender is at local.test, which is local, so the notices (RFC 3464
multipart/report DSNs) land in the sender's Maildir, where they are parsed
with Python's `email` package.
"""
import email
import email.policy
import re
import smtplib

from conftest import wait_for
from smtppeer import Peer

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
}

TEMPFAIL = "451 4.3.0 try again later"


def make_server(server_factory, peer, extra=None):
    settings = dict(LOCAL)
    settings["relayhost"] = "[127.0.0.1]:%d" % peer.port
    settings.update(extra or {})
    return server_factory(extra=settings)


def queue_ids(srv):
    out = srv.cmd("queue").stdout
    return re.findall(r"^([0-9A-Z]{8,})\b", out, re.M)


def reports(srv, local="alice", domain="local.test"):
    """The sender's mail, parsed."""
    # As text: RFC 6533 reports carry UTF-8 addresses in their fields.
    return [email.message_from_string(p.read_text("utf-8"), policy=email.policy.compat32)
            for p in srv.messages(domain, local)]


def status_blocks(msg):
    """The per-recipient blocks of a multipart/report's delivery-status part."""
    assert msg.get_content_type() == "multipart/report", msg.as_string()[:2000]
    assert msg.get_param("report-type") == "delivery-status"
    for part in msg.get_payload():
        if part.get_content_type() in ("message/delivery-status",
                                       "message/global-delivery-status"):
            payload = part.get_payload()
            if part.get_content_type() == "message/delivery-status":
                return payload[1:]  # the email package parses it into blocks
            # message/global-delivery-status (RFC 6533) is parsed as one
            # message: its header is the first block, its body the rest.
            text = payload[0].as_string() if isinstance(payload, list) else payload
            blocks = re.split(r"\r?\n\r?\n", text.strip())
            return [email.message_from_string(b) for b in blocks[1:]]
    raise AssertionError("no delivery-status part:\n" + msg.as_string()[:2000])


def deferred_count(srv, rcpt):
    return len(re.findall(r"to=<%s>[^\n]*status=deferred" % re.escape(rcpt), srv.log_text()))


def send(srv, rcpt, rcpt_options=(), sender="alice@local.test", body=None, utf8=False):
    body = body or ("From: %s\r\nTo: %s\r\nSubject: delay test\r\n\r\nhello\r\n" % (sender, rcpt))
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.ehlo("client.test")
        refused = c.sendmail(sender, [rcpt], body.encode("utf-8"),
                             mail_options=["SMTPUTF8"] if utf8 else [],
                             rcpt_options=list(rcpt_options))
        assert not refused


def test_one_delay_notice_then_delivery(server_factory):
    with Peer() as relay:
        relay.mail_reply = TEMPFAIL  # 4xx to everything
        srv = make_server(server_factory, relay, {"delay_warning_time": "1s"})
        send(srv, "bob@example.net")
        # The first attempt is within the second: a deferral, no notice yet;
        # retries every 1-2 s, and the first after a second sends the notice.
        assert wait_for(lambda: reports(srv), timeout=30), srv.log_text()
        log = srv.log_text()
        assert re.search(r"^.*[0-9A-Z]{15}: sender delay notification: [0-9A-Z]{15}$", log, re.M), log
        [msg] = reports(srv)
        assert msg["To"] == "<alice@local.test>"
        assert "Delayed Mail" in msg["Subject"]
        [block] = status_blocks(msg)
        assert block["Action"] == "delayed"
        assert block["Final-Recipient"] == "rfc822; bob@example.net"
        assert block["Status"] == "4.3.0"
        assert block["Will-Retry-Until"]
        assert "451 4.3.0 try again later" in block["Diagnostic-Code"]
        # The original headers come back, not the body.
        assert msg.get_payload()[-1].get_content_type() == "text/rfc822-headers"
        assert "Subject: delay test" in msg.as_string()
        # Still queued, and tried again more than once since, without a second notice.
        [qid] = queue_ids(srv)
        seen = deferred_count(srv, "bob@example.net")
        assert wait_for(lambda: deferred_count(srv, "bob@example.net") >= seen + 2, timeout=30)
        # A restart does not send it again: the notice is recorded in the envelope.
        srv.stop()
        srv.start()
        seen = deferred_count(srv, "bob@example.net")
        assert wait_for(lambda: deferred_count(srv, "bob@example.net") >= seen + 2, timeout=30)
        assert queue_ids(srv) == [qid]
        assert srv.log_text().count("sender delay notification") == 1
        # The relay accepts again: flushed, delivered, and still one notice.
        relay.mail_reply = None
        r = srv.cmd("queue", "flush")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()
        assert wait_for(lambda: queue_ids(srv) == [], timeout=20), srv.cmd("queue").stdout
        assert relay.messages[0].rcpt_tos == ["bob@example.net"]
        assert len(reports(srv)) == 1
        assert srv.log_text().count("sender delay notification") == 1


def test_notify_never_and_failure_get_no_delay_notice(server_factory):
    """NOTIFY=NEVER, and NOTIFY=FAILURE without DELAY: none; NOTIFY=DELAY: one."""
    with Peer() as relay:
        relay.mail_reply = TEMPFAIL
        srv = make_server(server_factory, relay, {"delay_warning_time": "1s"})
        send(srv, "never@example.net", ["NOTIFY=NEVER"])
        send(srv, "failure@example.net", ["NOTIFY=FAILURE"])
        send(srv, "delay@example.net", ["NOTIFY=DELAY"])
        assert wait_for(lambda: reports(srv), timeout=30), srv.log_text()
        # The others are deferred again well after the delay time has passed.
        for rcpt in ("never@example.net", "failure@example.net"):
            seen = deferred_count(srv, rcpt)
            assert wait_for(lambda: deferred_count(srv, rcpt) >= seen + 2, timeout=30)
        [msg] = reports(srv)
        [block] = status_blocks(msg)
        assert block["Final-Recipient"] == "rfc822; delay@example.net"
        assert block["Action"] == "delayed"
        assert srv.log_text().count("sender delay notification") == 1
        assert len(queue_ids(srv)) == 3


def test_no_delay_notice_by_default(server_factory):
    """delay_warning_time = 0h (the default): never."""
    with Peer() as relay:
        relay.mail_reply = TEMPFAIL
        srv = make_server(server_factory, relay)
        send(srv, "bob@example.net")
        assert wait_for(lambda: deferred_count(srv, "bob@example.net") >= 3, timeout=30)
        assert reports(srv) == []
        assert "delay notification" not in srv.log_text()


def test_no_delay_notice_for_the_null_sender(server_factory):
    with Peer() as relay:
        relay.mail_reply = TEMPFAIL
        srv = make_server(server_factory, relay, {"delay_warning_time": "1s"})
        send(srv, "bob@example.net", sender="")
        assert wait_for(lambda: deferred_count(srv, "bob@example.net") >= 3, timeout=30)
        assert "delay notification" not in srv.log_text()


UTF8_RCPT = "用户@example.net"


def test_smtputf8_to_a_peer_without_it_bounces(server_factory):
    """RFC 6531 3.2: mail that needs SMTPUTF8 is not sent to a peer without it: 5.6.7."""
    with Peer(smtputf8=False) as relay:
        srv = make_server(server_factory, relay)
        send(srv, UTF8_RCPT, utf8=True,
             body="From: alice@local.test\r\nTo: %s\r\nSubject: utf8\r\n\r\nhi\r\n" % UTF8_RCPT)
        assert wait_for(lambda: reports(srv), timeout=30), srv.log_text()
        [msg] = reports(srv)
        [block] = status_blocks(msg)
        assert block["Action"] == "failed"
        assert block["Status"] == "5.6.7"
        assert UTF8_RCPT in block["Final-Recipient"]
        assert "SMTPUTF8" in block["Diagnostic-Code"]
        assert not relay.messages
        assert relay.mail_froms == []  # refused before any transaction
        assert wait_for(lambda: queue_ids(srv) == [], timeout=20)
        assert re.search(r"dsn=5\.6\.7, status=bounced", srv.log_text()), srv.log_text()


def test_smtputf8_to_a_peer_with_it_is_delivered(server_factory):
    with Peer() as relay:
        srv = make_server(server_factory, relay)
        send(srv, UTF8_RCPT, utf8=True,
             body="From: alice@local.test\r\nTo: %s\r\nSubject: utf8\r\n\r\nhi\r\n" % UTF8_RCPT)
        assert wait_for(lambda: relay.messages, timeout=30), srv.log_text()
        m = relay.messages[0]
        assert m.rcpt_tos == [UTF8_RCPT]
        assert "SMTPUTF8" in [o.upper() for o in m.mail_options]
        assert wait_for(lambda: queue_ids(srv) == [], timeout=20)
        assert reports(srv) == []
