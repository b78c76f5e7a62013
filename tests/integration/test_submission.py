"""Submission end to end: STARTTLS (RFC 3207), implicit TLS (RFC 8314) and
SMTP AUTH (RFC 4954) against the real binary, with smtplib, swaks, openssl
s_client and raw sockets; users made by `hongyan user add`."""
import base64
import shutil
import smtplib
import socket
import ssl
import subprocess
import warnings

import pytest

from smtpclient import RawClient, insecure_tls_context
from conftest import free_port, wait_for

MSG = (b"From: Alice <alice@example.com>\r\n"
       b"To: u@example.com\r\n"
       b"Subject: submitted\r\n"
       b"\r\n"
       b"Hello.\r\n")

USERS = {  # name: (password, hongyan user add option)
    "alice@example.com": ("yes-crypt pw", None),
    "sam": ("sha 512 pw", "--sha512"),
    "bea": ("bcrypt-pw", "--bcrypt"),
}




def make_server(server_factory, extra=None, users=USERS):
    settings = {
        # Remote mail goes nowhere fast: a closed port, so it just defers.
        "relayhost": "[127.0.0.1]:%d" % free_port(),
        "smtpd_sasl_failure_delay": "0",
    }
    settings.update(extra or {})
    srv = server_factory(settings, start=False)
    if "smtps_listen" in settings and settings["smtps_listen"] == "auto":
        srv.settings["smtps_listen"] = "127.0.0.1:%d" % srv.smtps_port
        srv.write_config()
    for name, (password, option) in users.items():
        args = ["user", "add"] + ([option] if option else []) + [name]
        r = srv.cmd(*args, input=password + "\n")
        assert r.returncode == 0, r.stderr
    srv.start()
    return srv




def plain_b64(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def greet(port, **kw):
    c = RawClient(port, **kw)
    code, _, _ = c.reply()
    assert code == 220
    return c


def test_ehlo_offers_starttls_then_auth(server_factory):
    srv = make_server(server_factory)
    c = greet(srv.submission_port)
    ext = c.ehlo()
    assert "STARTTLS" in ext
    assert not any(e.startswith("AUTH") for e in ext)
    c.starttls()
    # RFC 3207 4.2: the session starts over (no AUTH yet: MAIL is refused as
    # unauthenticated; without HELO it would be taken, as Postfix does, where
    # smtpd_helo_required = no).
    assert c.cmd("MAIL FROM:<alice@example.com>")[0] == 530
    ext = c.ehlo()
    assert "AUTH PLAIN LOGIN" in ext
    assert "STARTTLS" not in ext
    # STARTTLS a second time is refused.
    assert c.cmd("STARTTLS")[0] == 554
    c.close()
    assert "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher" \
        in srv.log_text()


def test_auth_refused_before_tls(server_factory):
    srv = make_server(server_factory)
    c = greet(srv.submission_port)
    c.ehlo()
    code, text, _ = c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))
    assert code == 538 and text.startswith("5.7.11"), text
    # And MAIL without TLS on submission.
    code, text, _ = c.cmd("MAIL FROM:<sam@example.com>")
    assert code == 530 and "STARTTLS" in text
    c.close()


def test_mail_needs_login_on_submission(server_factory):
    srv = make_server(server_factory)
    c = greet(srv.submission_port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    code, text, _ = c.cmd("MAIL FROM:<alice@example.com>")
    assert code == 530 and text == "5.7.0 Authentication required"
    c.close()


@pytest.mark.parametrize("name", sorted(USERS))
def test_login_each_hash_kind(server_factory, name):
    srv = make_server(server_factory)
    password = USERS[name][0]
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
        s.starttls(context=insecure_tls_context())
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(name, password + "x")
        assert e.value.smtp_code == 535
    for mech in ("PLAIN", "LOGIN"):
        with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
            s.starttls(context=insecure_tls_context())
            s.ehlo("client.example")
            s.user, s.password = name, password
            code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                             initial_response_ok=(mech == "PLAIN"))
            assert code == 235
    assert "SASL PLAIN authentication failed" in srv.log_text() or \
        "SASL LOGIN authentication failed" in srv.log_text()
    assert password not in srv.log_text()


def test_unknown_user_and_cancel(server_factory):
    srv = make_server(server_factory)
    c = greet(srv.submission_port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_b64("nobody", "yes-crypt pw"))[0] == 535
    assert c.cmd("AUTH LOGIN")[:2] == (334, "VXNlcm5hbWU6")
    code, text, _ = c.cmd("*")
    assert (code, text) == (501, "5.0.0 Authentication aborted")
    assert c.cmd("AUTH PLAIN not-base64!")[0] == 501
    assert c.cmd("AUTH CRAM-MD5")[0] == 504
    # authzid other than the user: refused.
    raw = base64.b64encode(b"bea\0sam\0sha 512 pw").decode()
    assert c.cmd("AUTH PLAIN " + raw)[0] == 535
    # Empty initial response "=": malformed for PLAIN.
    assert c.cmd("AUTH PLAIN =")[0] == 501
    # PLAIN with the response on its own line.
    assert c.cmd("AUTH PLAIN")[:2] == (334, "")
    assert c.cmd(plain_b64("sam", "sha 512 pw"))[0] == 235
    # Once is enough.
    assert c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))[0] == 503
    c.close()
    assert "sasl_username=nobody" in srv.log_text()


def test_relay_after_login_only(server_factory):
    srv = make_server(server_factory, {"mynetworks": "192.0.2.0/24",
                                       "smtpd_sasl_auth_enable": "yes"})
    # Port 25 style listener, AUTH enabled there: relaying needs the login.
    c = greet(srv.smtpd_port)
    c.ehlo()
    assert c.cmd("MAIL FROM:<sam@example.com>")[0] == 250
    code, text, _ = c.cmd("RCPT TO:<someone@remote.test>")
    assert code == 454 and "Relay access denied" in text
    c.cmd("RSET")
    c.starttls()
    assert "AUTH PLAIN LOGIN" in c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))[0] == 235
    assert c.cmd("MAIL FROM:<sam@example.com>")[0] == 250
    assert c.cmd("RCPT TO:<someone@remote.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + b".\r\n")
    code, text, _ = c.reply()
    assert code == 250 and "queued as" in text
    c.close()
    assert "sasl_method=PLAIN, sasl_username=sam" in srv.log_text()


def test_auth_not_on_port25_by_default(server_factory):
    srv = make_server(server_factory)
    c = greet(srv.smtpd_port)
    assert "STARTTLS" in c.ehlo()
    c.starttls()
    assert not any(e.startswith("AUTH") for e in c.ehlo())
    assert c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))[0] == 503
    c.close()


def test_no_users_file_no_auth(server_factory):
    srv = make_server(server_factory, users={})
    c = greet(srv.submission_port)
    c.ehlo()
    c.starttls()
    assert not any(e.startswith("AUTH") for e in c.ehlo())
    c.close()


def test_received_header_esmtpsa(server_factory):
    srv = make_server(server_factory, {"smtpd_sasl_authenticated_header": "yes"})
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
        s.starttls(context=insecure_tls_context())
        s.login("sam", "sha 512 pw")
        s.sendmail("sam@example.com", ["u@example.com"], MSG)
    assert wait_for(lambda: len(srv.messages("example.com", "u")) >= 1, timeout=20)
    data = srv.messages("example.com", "u")[0].read_bytes()
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert "with ESMTPSA id" in head
    assert "(using TLSv1.3 with cipher " in head and " bits)" in head
    assert "(Authenticated sender: sam)" in head


def test_received_header_hides_user_by_default(server_factory):
    srv = make_server(server_factory)
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
        s.starttls(context=insecure_tls_context())
        s.login("sam", "sha 512 pw")
        s.sendmail("sam@example.com", ["u@example.com"], MSG)
    assert wait_for(lambda: len(srv.messages("example.com", "u")) >= 1, timeout=20)
    head = srv.messages("example.com", "u")[0].read_bytes().split(b"\r\n\r\n", 1)[0].decode()
    received = head[head.index("Received: from"):]
    received = received[:received.index("by mx.example.com")]
    assert "with ESMTPSA id" in head
    assert "(using TLSv1.3 with cipher " in received
    assert "Authenticated" not in received and "sam" not in received


def test_sender_login_map(server_factory, tmp_path):
    senders = tmp_path / "senders"
    senders.write_text("sam@example.com sam\n"
                       "shared@example.com sam, alice@example.com\n"
                       "@example.org bea\n")
    srv = make_server(server_factory, {"smtpd_sender_login_maps": "texthash:%s" % senders})
    c = greet(srv.submission_port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))[0] == 235
    assert c.cmd("MAIL FROM:<sam@example.com>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<shared@example.com>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    code, text, _ = c.cmd("MAIL FROM:<alice@example.com>")
    assert code == 553 and text.startswith("5.7.1 <alice@example.com>"), text
    code, _, _ = c.cmd("MAIL FROM:<x@example.org>")
    assert code == 553
    assert c.cmd("MAIL FROM:<>")[0] == 250
    c.close()


def test_starttls_discards_pipelined_commands(server_factory):
    """CVE-2011-0411: RSET sent in the clear behind STARTTLS must not be answered inside TLS."""
    srv = make_server(server_factory)
    c = greet(srv.submission_port)
    c.ehlo()
    c.send(b"STARTTLS\r\nRSET\r\n")
    code, text, _ = c.reply()
    assert code == 220, text
    assert c.buf == b""  # nothing else came in the clear
    c.sock = insecure_tls_context().wrap_socket(c.sock, server_hostname="mx.example.com")
    # The first reply inside TLS is the one to this EHLO, not a 250 for RSET.
    c.send(b"EHLO client.example\r\n")
    first = c.line()
    assert first == "250-mx.example.com", first
    c.close()


def test_smtps_implicit_tls(server_factory):
    srv = make_server(server_factory, {"smtps_listen": "auto"})
    with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, timeout=30, context=insecure_tls_context()) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert "auth" in s.esmtp_features and "starttls" not in s.esmtp_features
        s.login("bea", "bcrypt-pw")
        s.sendmail("bea@example.com", ["u@example.com"], MSG)
    assert wait_for(lambda: len(srv.messages("example.com", "u")) >= 1, timeout=20)
    # Without a login, MAIL is refused on smtps too.
    c = greet(srv.smtps_port, implicit_tls=True)
    c.ehlo()
    assert c.cmd("MAIL FROM:<bea@example.com>")[0] == 530
    c.close()


def test_failures_lead_to_refusal(server_factory):
    srv = make_server(server_factory, {"smtpd_sasl_failure_limit": "3"})
    c = greet(srv.submission_port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    answers = [c.cmd("AUTH PLAIN " + plain_b64("sam", "wrong%d" % i))[0] for i in range(3)]
    assert answers == [535, 535, 535]
    # The limit is reached: even the right password is refused, and the session ends.
    code, text, _ = c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))
    assert code == 421 and text.startswith("4.7.0"), text
    assert c.closed()
    c.close()
    # A new connection from the same address is refused as well.
    c = greet(srv.submission_port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_b64("sam", "sha 512 pw"))[0] == 421
    c.close()
    assert "too many failures from this address" in srv.log_text()


def test_tls_1_1_refused(server_factory):
    srv = make_server(server_factory)
    c = greet(srv.submission_port)
    c.ehlo()
    code, _, _ = c.cmd("STARTTLS")
    assert code == 220
    ctx = insecure_tls_context()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        # Let OpenSSL really offer 1.1, so that the refusal is the server's.
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this Python cannot offer TLS 1.1")
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        ctx.wrap_socket(c.sock, server_hostname="mx.example.com")
    c.close()


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth(server_factory, mech):
    srv = make_server(server_factory)
    r = subprocess.run(["swaks", "--timeout", "120", "--server", "127.0.0.1:%d" % srv.submission_port,
                        "--from", "alice@example.com", "--to", "u@example.com",
                        "--tls", "--auth", mech, "--auth-user", "alice@example.com",
                        "--auth-password", "yes-crypt pw", "--helo", "client.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 Authentication successful" in r.stdout
    assert "queued as" in r.stdout
    r = subprocess.run(["swaks", "--timeout", "120", "--server", "127.0.0.1:%d" % srv.submission_port,
                        "--from", "alice@example.com", "--to", "u@example.com",
                        "--tls", "--auth", mech, "--auth-user", "alice@example.com",
                        "--auth-password", "not it", "--helo", "client.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "535 5.7.8" in r.stdout


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_tls_on_connect(server_factory):
    srv = make_server(server_factory, {"smtps_listen": "auto"})
    r = subprocess.run(["swaks", "--timeout", "120", "--server", "127.0.0.1:%d" % srv.smtps_port,
                        "--from", "sam@example.com", "--to", "u@example.com",
                        "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "sam",
                        "--auth-password", "sha 512 pw", "--helo", "client.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "queued as" in r.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_s_client_starttls(server_factory):
    srv = make_server(server_factory)
    r = subprocess.run(["openssl", "s_client", "-ign_eof", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % srv.submission_port, "-servername", "mx.example.com"],
                       input="EHLO client.example\r\nQUIT\r\n", capture_output=True, text=True,
                       timeout=60)
    out = r.stdout
    assert "subject=CN = mx.example.com" in out or "subject=CN=mx.example.com" in out, out
    assert "TLSv1.3" in out
    assert "250-AUTH PLAIN LOGIN" in out or "250 AUTH PLAIN LOGIN" in out
    assert "sni=mx.example.com" in srv.log_text()


def test_user_added_while_running_can_log_in_without_reload(server_factory):
    """`hongyan user add` on a running server takes effect without SIGHUP."""
    srv = make_server(server_factory, users={})
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
        s.starttls(context=insecure_tls_context())
        s.ehlo()
        assert not s.has_extn("auth")
    r = srv.cmd("user", "add", "late", input="late-pw\n")
    assert r.returncode == 0, r.stderr

    def logs_in():
        with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
            s.starttls(context=insecure_tls_context())
            s.ehlo()
            if not s.has_extn("auth"):
                return False
            s.login("late", "late-pw")
            return True

    assert wait_for(logs_in, timeout=15, step=0.5)
    assert "users file" in srv.log_text() or "user(s) loaded" in srv.log_text()


def test_submission_adds_missing_message_id_and_date(server_factory):
    """RFC 6409 8.2, 8.3: submitted mail lacking Date or Message-ID gets them,
    once; mail that has them keeps its own."""
    srv = make_server(server_factory)
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
        s.starttls(context=insecure_tls_context())
        s.login("sam", "sha 512 pw")
        s.sendmail("sam@example.com", ["u@example.com"], MSG)  # neither field
        s.sendmail("sam@example.com", ["v@example.com"],
                   b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <own@example.com>\r\n"
                   + MSG)
    assert wait_for(lambda: srv.messages("example.com", "u") and srv.messages("example.com", "v"),
                    timeout=20)
    import email
    import email.utils
    added = email.message_from_bytes(srv.messages("example.com", "u")[0].read_bytes())
    assert len(added.get_all("Message-ID")) == 1
    assert added["Message-ID"].startswith("<") and added["Message-ID"].endswith("@mx.example.com>")
    assert len(added.get_all("Date")) == 1
    assert email.utils.parsedate_to_datetime(added["Date"]) is not None
    own = email.message_from_bytes(srv.messages("example.com", "v")[0].read_bytes())
    assert own.get_all("Message-ID") == ["<own@example.com>"]
    assert own.get_all("Date") == ["Mon, 1 Jan 2024 00:00:00 +0000"]
    assert "added missing Message-ID and Date" in srv.log_text()


def test_unqualified_sender_completed_for_logged_in_users(server_factory):
    """RFC 6409 8.1: MAIL FROM:<sam> after login becomes sam@$myorigin; without
    a login a bare local part stays a syntax error."""
    srv = make_server(server_factory, {"myorigin": "example.com"})
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as s:
        s.starttls(context=insecure_tls_context())
        s.login("sam", "sha 512 pw")
        s.sendmail("sam", ["u@example.com"], MSG)
    assert wait_for(lambda: srv.messages("example.com", "u"), timeout=20)
    assert srv.messages("example.com", "u")[0].read_bytes().startswith(
        b"Return-Path: <sam@example.com>\r\n")
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        s.ehlo()
        code, text = s.mail("sam")
        assert (code, text[:5]) == (501, b"5.1.7")
