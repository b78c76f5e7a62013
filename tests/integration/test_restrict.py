"""Postfix's access restrictions against the real binary: relay control
(never an open relay), access tables, DNS lists through the test DNS
server, HELO/sender/recipient checks, warn_if_reject, smtpd_delay_reject,
restriction classes and configuration errors. Policy services and rate
limits are in test_policy.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from smtpclient import RawClient  # noqa: E402
from conftest import run, wait_for  # noqa: E402
from dnsserver import DNSServer  # noqa: E402

ZONE = {
    # 127.0.0.1 is listed in zen.test, with a reason in block.test.
    "1.0.0.127.zen.test": [("A", "127.0.0.2")],
    "1.0.0.127.block.test": [("A", "127.0.0.4"), ("TXT", "see https://block.test/127.0.0.1")],
    "1.0.0.127.white.test": [("A", "127.0.0.2")],
    "1.0.0.127.slow.test": ["TIMEOUT"],
    "bad.test.rhs.test": [("A", "127.0.0.2")],
    "good.test": [("MX", (10, "mx.good.test"))],
    "mx.good.test": [("A", "192.0.2.25")],
    "aonly.test": [("A", "192.0.2.26")],
    "bad.test": [("A", "192.0.2.27")],
    "broken.test": [("RCODE", "SERVFAIL")],
    "nullmx.test": [("MX", (0, "."))],
}


def session(port, ehlo="client.example"):
    c = RawClient(port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO " + ehlo)[0] == 250
    return c


def rcpt_reply(port, sender="a@good.test", rcpt="u@example.com", ehlo="client.example"):
    c = session(port, ehlo)
    code, text, _ = c.cmd("MAIL FROM:<%s>" % sender)
    assert code == 250, text  # smtpd_delay_reject: refusals come at RCPT
    code, text, _ = c.cmd("RCPT TO:<%s>" % rcpt)
    c.cmd("QUIT")
    c.close()
    return code, text


def send_message(port, rcpt="u@example.com", sender="a@good.test", body=b"Subject: t\r\n\r\nhi\r\n"):
    c = session(port)
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    code, text, _ = c.cmd("RCPT TO:<%s>" % rcpt)
    assert code == 250, text
    assert c.cmd("DATA")[0] == 354
    c.send(body + b".\r\n")
    code, text, _ = c.reply()
    c.cmd("QUIT")
    c.close()
    return code, text


# ---- relay control: never an open relay ----


def test_no_open_relay_any_combination(server_factory, tmp_path):
    access = tmp_path / "rcpt_access"
    access.write_text("victim@elsewhere.example OK\nelsewhere.example OK\n")
    srv = server_factory({"mynetworks": "192.0.2.0/24", "relay_domains": "relay.example",
                          "smtpd_recipient_restrictions":
                              "check_recipient_access texthash:%s, permit" % access})
    # The default relay list comes first: an access OK later does not open the relay.
    assert rcpt_reply(srv.smtpd_port, rcpt="victim@elsewhere.example") == (
        454, "4.7.1 <victim@elsewhere.example>: Relay access denied")
    assert rcpt_reply(srv.smtpd_port, rcpt="x@other.example")[0] == 454
    assert rcpt_reply(srv.smtpd_port, rcpt="x@relay.example")[0] == 250
    assert rcpt_reply(srv.smtpd_port, rcpt="u@example.com")[0] == 250
    # Source routes and percent hacks name a remote domain too.
    assert rcpt_reply(srv.smtpd_port, rcpt="@example.com:x@other.example")[0] == 454
    # The submission port never trusts mynetworks: relaying needs AUTH there.
    srv2 = server_factory({"mynetworks": "127.0.0.0/8"})
    c = RawClient(srv2.submission_port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example")
    code, _, _ = c.cmd("MAIL FROM:<a@good.test>")
    if code == 250:
        assert c.cmd("RCPT TO:<x@other.example>")[0] >= 400
    c.close()
    # mynetworks may relay on the MX port (permit_mynetworks).
    assert rcpt_reply(srv2.smtpd_port, rcpt="x@other.example")[0] == 250


def test_relay_lists_without_a_guard_refuse_everything(server_factory):
    # Postfix's rule: one of the lists must stop unauthorised relaying.
    srv = server_factory({"mynetworks": "192.0.2.0/24", "smtpd_relay_restrictions": "",
                          "smtpd_recipient_restrictions": "permit_mynetworks"})
    assert rcpt_reply(srv.smtpd_port, rcpt="x@other.example") == (
        451, "4.3.5 Server configuration error")
    assert rcpt_reply(srv.smtpd_port, rcpt="u@example.com")[0] == 451
    assert "specify at least one working instance of" in srv.log_text() + \
        (srv.tmp / "maillog").read_text()


def test_recipient_list_reject_unauth_destination(server_factory):
    srv = server_factory({"mynetworks": "192.0.2.0/24", "smtpd_relay_restrictions": "",
                          "smtpd_recipient_restrictions":
                              "permit_mynetworks, permit_sasl_authenticated, "
                              "reject_unauth_destination"})
    assert rcpt_reply(srv.smtpd_port, rcpt="x@other.example") == (
        554, "5.7.1 <x@other.example>: Relay access denied")
    assert rcpt_reply(srv.smtpd_port, rcpt="u@example.com")[0] == 250
    log = (srv.tmp / "maillog").read_text()
    assert ("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 <x@other.example>: "
            "Relay access denied; from=<a@good.test> to=<x@other.example> proto=ESMTP "
            "helo=<client.example>") in log


# ---- access tables ----


def test_access_table_results(server_factory, tmp_path):
    senders = tmp_path / "senders"
    senders.write_text(
        "spam@bad.example REJECT no thanks\n"
        "later@bad.example DEFER\n"
        "code@bad.example 521 5.7.0 go away\n"
        "soft@bad.example 450 4.7.2 busy\n"
        "bad.example REJECT\n"
        "ok@bad.example OK\n"
        "warn@good.test WARN looks odd\n"
        "strict@good.test strict_class\n"
        "typo@good.test OKAY\n"
        "fix@good.test 550 5.1.1 no such sender\n"
        "dir@good.test DEFER_IF_REJECT try again\n"
        "<> DUNNO\n")
    clients = tmp_path / "clients"
    clients.write_text("127.0.0.2 REJECT\n")
    helos = tmp_path / "helos"
    helos.write_text("evil.example REJECT go away\n")
    srv = server_factory({
        "smtpd_restriction_classes": "strict_class",
        "strict_class": "reject_non_fqdn_helo_hostname, reject",
        "smtpd_client_restrictions": "check_client_access texthash:%s" % clients,
        "smtpd_helo_restrictions": "check_helo_access texthash:%s" % helos,
        "smtpd_sender_restrictions": "check_sender_access texthash:%s" % senders,
    })
    port = srv.smtpd_port
    assert rcpt_reply(port, "spam@bad.example") == (
        554, "5.7.1 <spam@bad.example>: Sender address rejected: no thanks")
    assert rcpt_reply(port, "later@bad.example") == (
        450, "4.7.1 <later@bad.example>: Sender address rejected: Access denied")
    # 521 (and 421) end the session after the reply, as Postfix does.
    c = session(port)
    assert c.cmd("MAIL FROM:<code@bad.example>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[:2] == (
        521, "5.7.0 <code@bad.example>: Sender address rejected: go away")
    assert c.closed()
    assert rcpt_reply(port, "soft@bad.example") == (
        450, "4.7.2 <soft@bad.example>: Sender address rejected: busy")
    # The domain and its parents are keys too; the address itself wins.
    assert rcpt_reply(port, "other@bad.example")[0] == 554
    assert rcpt_reply(port, "x@sub.bad.example")[0] == 554
    assert rcpt_reply(port, "ok@bad.example")[0] == 250
    # A recipient's status code given for a sender is mapped to the sender's (RFC 3463).
    assert rcpt_reply(port, "fix@good.test") == (
        550, "5.1.7 <fix@good.test>: Sender address rejected: no such sender")
    # DEFER_IF_REJECT holds within its list only; nothing in this one refuses.
    assert rcpt_reply(port, "dir@good.test")[0] == 250
    assert rcpt_reply(port, "")[0] == 250
    assert rcpt_reply(port, "warn@good.test")[0] == 250
    assert rcpt_reply(port, "strict@good.test") == (
        554, "5.7.1 <strict@good.test>: Sender address rejected: Access denied")
    # A value that is no action and no class: a configuration error, never a permit.
    assert rcpt_reply(port, "typo@good.test") == (451, "4.3.5 Server configuration error")
    assert rcpt_reply(port, ehlo="evil.example") == (
        554, "5.7.1 <evil.example>: Helo command rejected: go away")
    log = (srv.tmp / "maillog").read_text()
    assert "NOQUEUE: warn: RCPT from localhost[127.0.0.1]: looks odd; from=<warn@good.test>" in log
    assert 'unknown smtpd restriction: "OKAY"' in log + srv.log_text()


def test_access_hold_discard_prepend_redirect(server_factory, tmp_path):
    rcpts = tmp_path / "rcpts"
    rcpts.write_text("held@example.com HOLD\n"
                     "gone@example.com DISCARD\n"
                     "tagged@example.com PREPEND X-Tag: checked by access\n"
                     "moved@example.com REDIRECT u@example.com\n")
    srv = server_factory({"smtpd_recipient_restrictions":
                          "check_recipient_access texthash:%s" % rcpts})
    port = srv.smtpd_port
    code, text = send_message(port, "gone@example.com")
    assert code == 250 and "queued as" in text
    code, _ = send_message(port, "tagged@example.com")
    assert code == 250
    msgs = wait_for(lambda: srv.messages("example.com", "tagged"), timeout=20)
    assert msgs and msgs[0].read_bytes().find(b"X-Tag: checked by access\r\n") >= 0
    data = msgs[0].read_bytes()
    assert data.index(b"X-Tag:") < data.index(b"Received: from client.example")
    code, _ = send_message(port, "moved@example.com")
    assert code == 250
    assert wait_for(lambda: srv.messages("example.com", "u"), timeout=20)
    code, text = send_message(port, "held@example.com")
    assert code == 250
    qid = text.split()[-1]
    assert wait_for(lambda: (srv.data / "queue" / "hold").exists() and
                    any(qid in p.name for p in (srv.data / "queue" / "hold").iterdir()),
                    timeout=10), list((srv.data / "queue").rglob("*"))
    assert not srv.messages("example.com", "gone")
    assert not srv.messages("example.com", "moved")
    log = (srv.tmp / "maillog").read_text()
    assert "discard: RCPT from localhost[127.0.0.1]: <gone@example.com>: Recipient address " \
           "triggers DISCARD action" in log
    assert "hold: RCPT from localhost[127.0.0.1]: <held@example.com>: Recipient address " \
           "triggers HOLD action" in log


def test_discard_after_inbound_checks(server_factory, tmp_path):
    # Outside mynetworks the message is held for SPF/DKIM/DMARC first; DISCARD still answers.
    rcpts = tmp_path / "rcpts"
    rcpts.write_text("gone@example.com DISCARD\n")
    with DNSServer(ZONE) as dns:
        srv = server_factory({"dns_resolver": dns.address, "mynetworks": "192.0.2.0/24",
                              "smtpd_recipient_restrictions":
                                  "check_recipient_access texthash:%s" % rcpts})
        c = session(srv.smtpd_port)
        assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
        assert c.cmd("RCPT TO:<gone@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n")
        code, text, _ = c.reply()
        assert code == 250 and "queued as" in text
        assert c.cmd("NOOP")[0] == 250
        c.close()
        assert not srv.messages("example.com", "gone")


def test_end_of_data_reject(server_factory):
    srv = server_factory({"smtpd_end_of_data_restrictions": "reject"})
    code, text = send_message(srv.smtpd_port)
    assert (code, text) == (554, "5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied")
    assert not srv.messages("example.com", "u")


# ---- HELO, sender, recipient checks ----


def test_helo_sender_recipient_checks(server_factory):
    with DNSServer(ZONE) as dns:
        srv = server_factory({
            "dns_resolver": dns.address,
            "smtpd_helo_restrictions": "reject_invalid_helo_hostname, "
                                       "reject_non_fqdn_helo_hostname",
            "smtpd_sender_restrictions": "reject_non_fqdn_sender, reject_unknown_sender_domain",
            "smtpd_recipient_restrictions": "reject_non_fqdn_recipient, "
                                            "reject_unlisted_recipient",
            "virtual_mailbox_domains": "virt.example",
            "virtual_mailbox_maps": "inline:{known@virt.example=virt/known/}",
        })
        port = srv.smtpd_port
        ok = "known@virt.example"
        assert rcpt_reply(port, rcpt=ok, ehlo="nodot") == (
            504, "5.5.2 <nodot>: Helo command rejected: need fully-qualified hostname")
        assert rcpt_reply(port, rcpt=ok, ehlo="bad-.example") == (
            501, "5.5.2 <bad-.example>: Helo command rejected: Invalid name")
        # Postfix tolerates '_' in host names, and so do we.
        assert rcpt_reply(port, rcpt=ok, ehlo="bad_name.example")[0] == 250
        assert rcpt_reply(port, rcpt=ok, ehlo="[127.0.0.1]")[0] == 250
        assert rcpt_reply(port, "joe@nx.test", rcpt=ok) == (
            450, "4.1.8 <joe@nx.test>: Sender address rejected: Domain not found")
        assert rcpt_reply(port, "joe@aonly.test", rcpt=ok)[0] == 250
        assert rcpt_reply(port, "joe@nullmx.test", rcpt=ok) == (
            550, "5.7.27 <joe@nullmx.test>: Sender address rejected: Domain nullmx.test does "
                 "not accept mail (nullMX)")
        # A DNS failure never rejects: at worst the recipient is deferred.
        assert rcpt_reply(port, "joe@broken.test", rcpt=ok)[0] == 450
        assert rcpt_reply(port, "joe@nodot", rcpt=ok) == (
            504, "5.5.2 <joe@nodot>: Sender address rejected: need fully-qualified address")
        assert rcpt_reply(port, rcpt="nobody@virt.example")[0] == 550
        assert rcpt_reply(port, rcpt="known@virt.example")[0] == 250


def test_warn_if_reject_and_delay_reject(server_factory):
    srv = server_factory({"smtpd_recipient_restrictions": "warn_if_reject, reject, permit"})
    assert rcpt_reply(srv.smtpd_port)[0] == 250
    log = (srv.tmp / "maillog").read_text()
    assert ("NOQUEUE: reject_warning: RCPT from localhost[127.0.0.1]: 554 5.7.1 "
            "<u@example.com>: Recipient address rejected: Access denied;") in log
    # smtpd_delay_reject = no: the client list answers instead of the greeting.
    srv2 = server_factory({"smtpd_delay_reject": "no", "smtpd_client_restrictions": "reject",
                           "smtpd_sender_restrictions": "reject"})
    c = RawClient(srv2.smtpd_port)
    code, text, _ = c.reply()
    assert (code, text) == (554, "5.7.1 <localhost[127.0.0.1]>: Client host rejected: "
                                 "Access denied")
    assert c.cmd("EHLO client.example") == (503, "5.7.0 Error: access denied for "
                                                 "localhost[127.0.0.1]",
                                            ["503 5.7.0 Error: access denied for "
                                             "localhost[127.0.0.1]"])
    assert c.cmd("QUIT")[0] == 221
    srv3 = server_factory({"smtpd_delay_reject": "no", "smtpd_sender_restrictions": "reject"})
    c = session(srv3.smtpd_port)
    assert c.cmd("MAIL FROM:<a@good.test>") == (
        554, "5.7.1 <a@good.test>: Sender address rejected: Access denied",
        ["554 5.7.1 <a@good.test>: Sender address rejected: Access denied"])
    c.close()


def test_data_restrictions_at_bdat(server_factory):
    srv = server_factory({"smtpd_data_restrictions": "reject"})
    c = session(srv.smtpd_port)
    assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    c.send(b"BDAT 12 LAST\r\nSubject: x\r\n")
    assert c.reply()[:2] == (554, "5.7.1 <DATA>: Data command rejected: Access denied")
    # The chunk was skipped, not read as commands.
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    assert c.cmd("DATA")[:2] == (554, "5.7.1 <DATA>: Data command rejected: Access denied")
    c.close()


def test_unauth_pipelining(server_factory):
    srv = server_factory({"smtpd_data_restrictions": "reject_unauth_pipelining"})
    c = session(srv.smtpd_port)
    assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    c.send(b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n")
    assert c.reply()[:2] == (503, "5.5.0 <DATA>: Data command rejected: Improper use of SMTP "
                                  "command pipelining")
    c.close()
    # A client that waits for 354 is fine.
    assert send_message(srv.smtpd_port)[0] == 250


# ---- DNS lists ----


def test_dns_lists(server_factory, tmp_path):
    replies = tmp_path / "rbl_replies"
    replies.write_text("block.test $rbl_code 5.7.1 listed at $rbl_domain ($rbl_reason) "
                       "for $client_address\n")
    with DNSServer(ZONE) as dns:
        srv = server_factory({"dns_resolver": dns.address,
                              "smtpd_recipient_restrictions": "reject_rbl_client slow.test, "
                                                              "reject_rbl_client zen.test"})
        assert rcpt_reply(srv.smtpd_port) == (
            554, "5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.test")
        assert "warning: 1.0.0.127.slow.test: RBL lookup error" in srv.log_text() + \
            (srv.tmp / "maillog").read_text()
        # The answer is remembered (TTL): a second recipient asks nothing new.
        before = len(dns.queries)
        c = session(srv.smtpd_port)
        c.cmd("MAIL FROM:<a@good.test>")
        assert c.cmd("RCPT TO:<u@example.com>")[0] == 554
        assert c.cmd("RCPT TO:<v@example.com>")[0] == 554
        c.close()
        assert len([q for q in dns.queries[before:] if q[0].endswith("zen.test")]) <= 2
        srv2 = server_factory({"dns_resolver": dns.address,
                               "smtpd_recipient_restrictions":
                                   "reject_rbl_client zen.test=127.0.0.3, "
                                   "reject_rbl_client block.test"})
        assert rcpt_reply(srv2.smtpd_port) == (
            554, "5.7.1 Service unavailable; Client host [127.0.0.1] blocked using block.test; "
                 "see https://block.test/127.0.0.1")
        srv3 = server_factory({"dns_resolver": dns.address, "rbl_reply_maps":
                               "texthash:%s" % replies,
                               "smtpd_client_restrictions": "permit_dnswl_client nope.test, "
                                                            "reject_rbl_client block.test",
                               "smtpd_sender_restrictions": "reject_rhsbl_sender rhs.test"})
        assert rcpt_reply(srv3.smtpd_port) == (
            554, "5.7.1 listed at block.test (see https://block.test/127.0.0.1) for 127.0.0.1")
        srv4 = server_factory({"dns_resolver": dns.address,
                               "smtpd_client_restrictions": "permit_dnswl_client white.test, "
                                                            "reject_rbl_client zen.test",
                               "smtpd_sender_restrictions": "reject_rhsbl_sender rhs.test"})
        assert rcpt_reply(srv4.smtpd_port)[0] == 250
        assert rcpt_reply(srv4.smtpd_port, "x@bad.test") == (
            554, "5.7.1 Service unavailable; Sender address [x@bad.test] blocked using rhs.test")


# ---- configuration errors ----


def test_unknown_restriction_word(server_factory):
    srv = server_factory({"smtpd_client_restrictions": "permit_mynetwork",
                          "smtpd_sender_restrictions": "check_sender_access texthash:/nonexistent"})
    assert rcpt_reply(srv.smtpd_port) == (451, "4.3.5 Server configuration error")
    text = srv.log_text() + (srv.tmp / "maillog").read_text()
    assert 'unknown smtpd restriction "permit_mynetwork"' in text  # said at start
    assert 'unknown smtpd restriction: "permit_mynetwork"' in text  # and at the RCPT
    # A reload says it again.
    said = lambda: (srv.log_text() + (srv.tmp / "maillog").read_text()).count(
        'unknown smtpd restriction "permit_mynetwork"')
    before = said()
    srv.reload()
    assert wait_for(lambda: said() > before, timeout=10)
    proc = srv.cmd("config", "smtpd_client_restrictions")
    assert proc.returncode == 0
    assert 'unknown smtpd restriction "permit_mynetwork"' in proc.stderr
    assert "texthash:/nonexistent" in proc.stderr
    # An undeclared class name is a typo in main.cf, refused like any unknown key.
    bad = srv.tmp / "bad.cf"
    bad.write_text("smtpd_restriction_classes = a\nb = reject\n")
    proc = run(["-c", str(bad), "config"])
    assert proc.returncode != 0 and "unknown key 'b'" in proc.stderr


def test_client_name_and_domain_checks(server_factory, tmp_path):
    logins = tmp_path / "logins"
    logins.write_text("owned@good.test sam\n")
    with DNSServer(ZONE) as dns:
        # Without the name lookup the client is "unknown" and has no PTR name.
        srv = server_factory({"dns_resolver": dns.address, "smtpd_peername_lookup": "no",
                              "smtpd_client_restrictions": "reject_unknown_client_hostname"})
        assert rcpt_reply(srv.smtpd_port) == (
            450, "4.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]")
        srv2 = server_factory({"dns_resolver": dns.address, "smtpd_peername_lookup": "no",
                               "smtpd_client_restrictions":
                                   "reject_unknown_reverse_client_hostname"})
        assert rcpt_reply(srv2.smtpd_port) == (
            450, "4.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.1]")
        srv3 = server_factory({
            "dns_resolver": dns.address,
            "smtpd_helo_restrictions": "reject_unknown_helo_hostname, reject_rhsbl_helo rhs.test",
            "smtpd_sender_restrictions": "reject_sender_login_mismatch",
            "smtpd_sender_login_maps": "texthash:%s" % logins,
            "smtpd_recipient_restrictions": "reject_unknown_recipient_domain",
        })
        port = srv3.smtpd_port
        assert rcpt_reply(port, ehlo="nx.test") == (
            450, "4.7.1 <nx.test>: Helo command rejected: Host not found")
        assert rcpt_reply(port, ehlo="bad.test") == (
            554, "5.7.1 Service unavailable; Helo command [bad.test] blocked using rhs.test")
        assert rcpt_reply(port, ehlo="good.test")[0] == 250
        # A sender that belongs to a login, used without logging in.
        assert rcpt_reply(port, "owned@good.test", ehlo="good.test") == (
            553, "5.7.1 <owned@good.test>: Sender address rejected: not logged in")
        # mynetworks may relay, but not to a domain that does not exist.
        assert rcpt_reply(port, rcpt="x@nx.test", ehlo="good.test") == (
            450, "4.1.2 <x@nx.test>: Recipient address rejected: Domain not found")
        assert rcpt_reply(port, rcpt="x@good.test", ehlo="good.test")[0] == 250


def test_ipv6_client_dns_list(server_factory):
    # RFC 5782 2.4: an IPv6 client is looked up as 32 reversed nibbles.
    nibbles = ".".join(reversed("0" * 31 + "1"))
    with DNSServer({nibbles + ".zen.test": [("A", "127.0.0.2")]}) as dns:
        srv = server_factory({"dns_resolver": dns.address,
                              "smtpd_client_restrictions": "reject_rbl_client zen.test"},
                             start=False)
        port = srv.smtpd_port
        srv.settings["smtpd_listen"] = "127.0.0.1:%d, [::1]:%d" % (port, port)
        srv.write_config()
        srv.start()
        c = RawClient(port, host="::1")
        assert c.reply()[0] == 220
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
        assert c.cmd("RCPT TO:<u@example.com>")[:2] == (
            554, "5.7.1 Service unavailable; Client host [::1] blocked using zen.test")
        c.close()
        # The IPv4 client is not listed.
        c = RawClient(port)
        assert c.reply()[0] == 220
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@good.test>")
        assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
        c.close()
