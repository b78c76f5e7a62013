"""check_policy_service (Postfix's policy delegation protocol) against a
small policy server written here and against Debian's postgrey; servers
that misbehave cost one session a bounded wait."""
import os
import pwd
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from smtpclient import RawClient  # noqa: E402
from conftest import free_port, wait_for, wait_port  # noqa: E402


class PolicyServer:
    """Answers by the recipient's local part; counts connections and keeps requests."""

    def __init__(self, unix_path=None):
        self.requests = []
        self.connections = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                outer.connections += 1
                while True:
                    attrs = {}
                    while True:
                        line = self.rfile.readline(10000)
                        if not line:
                            return
                        line = line.rstrip(b"\n").decode()
                        if not line:
                            break
                        k, _, v = line.partition("=")
                        attrs[k] = v
                    outer.requests.append(attrs)
                    local = attrs.get("recipient", "").split("@")[0]
                    if attrs.get("protocol_state") == "END-OF-MESSAGE":
                        local = attrs.get("sender", "").split("@")[0]
                    if local == "rej":
                        self.wfile.write(b"action=REJECT not welcome\n\n")
                    elif local == "defer":
                        self.wfile.write(b"action=DEFER_IF_PERMIT try later\n\n")
                    elif local == "tag":
                        self.wfile.write(b"action=PREPEND X-Policy: seen\n\n")
                    elif local == "garbage":
                        self.wfile.write(b"this is no reply\n\n")
                    elif local == "endless":
                        try:
                            for _ in range(200):
                                self.wfile.write(b"x" * 1000)
                        except OSError:
                            return
                    elif local == "silent":
                        time.sleep(3)
                        return
                    elif local == "hangup":
                        return
                    else:
                        self.wfile.write(b"action=DUNNO\n\n")
                    self.wfile.flush()

        if unix_path:
            class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
                daemon_threads = True
            self.server = S(unix_path, Handler)
            self.endpoint = "unix:" + unix_path
        else:
            class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
                daemon_threads = True
                allow_reuse_address = True
            self.server = S(("127.0.0.1", 0), Handler)
            self.endpoint = "inet:127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def policy():
    p = PolicyServer()
    yield p
    p.stop()


def rcpt(port, rcpt, sender="a@good.test"):
    c = RawClient(port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    t0 = time.monotonic()
    code, text, _ = c.cmd("RCPT TO:<%s>" % rcpt)
    elapsed = time.monotonic() - t0
    c.cmd("QUIT")
    c.close()
    return code, text, elapsed


def test_policy_actions_and_request(server_factory, policy):
    srv = server_factory({"smtpd_recipient_restrictions":
                          "check_policy_service " + policy.endpoint})
    port = srv.smtpd_port
    assert rcpt(port, "u@example.com")[:2] == (250, "2.1.5 Ok")
    assert rcpt(port, "rej@example.com")[:2] == (
        554, "5.7.1 <rej@example.com>: Recipient address rejected: not welcome")
    assert rcpt(port, "defer@example.com")[:2] == (
        450, "4.7.1 <defer@example.com>: Recipient address rejected: try later")
    req = policy.requests[0]
    assert req["request"] == "smtpd_access_policy"
    assert req["protocol_state"] == "RCPT"
    assert req["protocol_name"] == "ESMTP"
    assert req["client_address"] == "127.0.0.1"
    assert req["client_name"] == "localhost"
    assert req["helo_name"] == "client.example"
    assert req["sender"] == "a@good.test"
    assert req["recipient"] == "u@example.com"
    assert req["recipient_count"] == "0"
    assert int(req["client_port"]) > 0 and req["encryption_protocol"] == ""
    # One instance per transaction, another for the next.
    c = RawClient(port)
    c.reply()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<a@good.test>")
    c.cmd("RCPT TO:<u@example.com>")
    c.cmd("RCPT TO:<v@example.com>")
    c.cmd("QUIT")
    c.close()
    last = policy.requests[-2:]
    assert last[0]["instance"] == last[1]["instance"] != req["instance"]
    assert last[1]["recipient_count"] == "1"
    # After STARTTLS the request names the protocol and cipher.
    c = RawClient(port)
    c.reply()
    c.cmd("EHLO client.example")
    c.starttls()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<a@good.test>")
    assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
    c.close()
    tls = policy.requests[-1]
    assert tls["encryption_protocol"].startswith("TLSv1"), tls
    assert tls["encryption_cipher"] and int(tls["encryption_keysize"]) >= 128
    # One connection, reused by every session of the worker.
    assert policy.connections == 1, policy.connections


def test_policy_at_connect(server_factory, policy):
    # smtpd_delay_reject = no: the client list (and its policy query) runs before the greeting.
    srv = server_factory({"smtpd_delay_reject": "no", "smtpd_client_restrictions":
                          "check_policy_service " + policy.endpoint})
    c = RawClient(srv.smtpd_port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    c.close()
    # (The harness's own start-up connection asked too.)
    assert policy.requests and all(r["protocol_state"] == "CONNECT" for r in policy.requests)


def test_policy_at_end_of_data(server_factory, policy):
    srv = server_factory({"smtpd_end_of_data_restrictions":
                          "check_policy_service " + policy.endpoint})
    for sender, want in (("rej@good.test", (554, "5.7.1 <END-OF-MESSAGE>: End-of-data "
                                                 "rejected: not welcome")),
                         ("a@good.test", (250, None))):
        c = RawClient(srv.smtpd_port)
        assert c.reply()[0] == 220
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
        assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        # The next command rides in the same packet: it waits for the verdict.
        c.send(b"Subject: t\r\n\r\nbody\r\n.\r\nNOOP\r\n")
        code, text, _ = c.reply()
        assert code == want[0], text
        if want[1]:
            assert text == want[1]
        assert c.reply()[0] == 250  # the NOOP
        c.close()
    assert wait_for(lambda: len(srv.messages("example.com", "u")) == 1, timeout=20)
    assert any(r.get("protocol_state") == "END-OF-MESSAGE" for r in policy.requests)
    log = (srv.tmp / "maillog").read_text()
    assert "reject: END-OF-MESSAGE from localhost[127.0.0.1]: 554 5.7.1 <END-OF-MESSAGE>" in log


def test_policy_server_failures_are_bounded(server_factory, policy):
    srv = server_factory({"smtpd_recipient_restrictions":
                          "check_policy_service " + policy.endpoint,
                          "smtpd_policy_service_timeout": "1s",
                          "smtpd_policy_service_try_limit": "1"})
    port = srv.smtpd_port
    default = "4.3.5 <%s>: Recipient address rejected: Server configuration problem"
    for who in ("garbage", "endless", "silent", "hangup"):
        code, text, elapsed = rcpt(port, who + "@example.com")
        assert (code, text) == (451, default % (who + "@example.com")), who
        assert elapsed < 5, (who, elapsed)
    # The server is still fine, and so is the next session.
    assert rcpt(port, "u@example.com")[0] == 250
    assert "policy server %s" % policy.endpoint in srv.log_text() + \
        (srv.tmp / "maillog").read_text()
    # Nobody listening: the default action too, after the retries.
    srv2 = server_factory({"smtpd_recipient_restrictions":
                           "check_policy_service inet:127.0.0.1:%d" % free_port(),
                           "smtpd_policy_service_retry_delay": "0s",
                           "smtpd_policy_service_default_action": "DUNNO"})
    assert rcpt(srv2.smtpd_port, "u@example.com")[0] == 250


def test_policy_unix_socket_and_prepend(server_factory, tmp_path):
    path = str(tmp_path / "policy.sock")
    p = PolicyServer(unix_path=path)
    os.chmod(path, 0o666)
    try:
        srv = server_factory({"smtpd_recipient_restrictions":
                              "check_policy_service " + p.endpoint})
        c = RawClient(srv.smtpd_port)
        assert c.reply()[0] == 220
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
        assert c.cmd("RCPT TO:<tag@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: t\r\n\r\nbody\r\n.\r\n")
        assert c.reply()[0] == 250
        c.close()
        msgs = wait_for(lambda: srv.messages("example.com", "tag"), timeout=20)
        assert msgs and msgs[0].read_bytes().find(b"X-Policy: seen\r\n") >= 0
    finally:
        p.stop()


@pytest.mark.skipif(not shutil.which("postgrey"), reason="postgrey (Debian) not installed")
def test_postgrey_greylists_then_accepts(server_factory, tmp_path):
    # postgrey drops to its own user: its database lives where that user can reach.
    db = tempfile.mkdtemp(prefix="hongyan-postgrey-")
    user = "postgrey" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        shutil.chown(db, user="postgrey")
    port = free_port()
    proc = subprocess.Popen(["postgrey", "--inet=127.0.0.1:%d" % port, "--dbdir=%s" % db,
                             "--delay=1", "--user=%s" % user, "--group=%s" % user,
                             "--pidfile=%s/postgrey.pid" % db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=proc)
        srv = server_factory({"smtpd_recipient_restrictions":
                              "check_policy_service inet:127.0.0.1:%d" % port})
        code, text, _ = rcpt(srv.smtpd_port, "u@example.com")
        # postgrey's DEFER_IF_PERMIT (its text carries 4.2.0 when the client speaks ESMTP).
        assert code == 450 and text.startswith("4.") and \
            "<u@example.com>: Recipient address rejected: Greylisted" in text, text
        time.sleep(2)
        c = RawClient(srv.smtpd_port)
        assert c.reply()[0] == 220
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
        assert c.cmd("RCPT TO:<u@example.com>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: t\r\n\r\nbody\r\n.\r\n")
        assert c.reply()[0] == 250
        c.close()
        msgs = wait_for(lambda: srv.messages("example.com", "u"), timeout=20)
        assert msgs and b"X-Greylist: delayed" in msgs[0].read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(db, ignore_errors=True)


# ---- rate limits (Postfix's anvil) ----


def with_limits(srv, limits):
    """The harness's own start-up connections must not count: wait until
    they are gone, then turn the limits on with a reload."""
    maillog = srv.tmp / "maillog"

    def quiet():
        text = maillog.read_text() if maillog.exists() else ""
        return text.count("connect from") == 2 * text.count("disconnect from")
    assert wait_for(quiet, timeout=15)
    srv.settings.update(limits)
    srv.write_config()
    before = srv.log_text().count("reload:") + maillog.read_text().count("reload:")
    srv.reload()
    assert wait_for(lambda: srv.log_text().count("reload:") +
                    maillog.read_text().count("reload:") > before, timeout=10)
    return srv


def test_rate_limits(server_factory):
    srv = with_limits(server_factory(), {"smtpd_client_event_limit_exceptions": "",
                                         "smtpd_client_connection_rate_limit": "4",
                                         "smtpd_client_message_rate_limit": "2",
                                         "smtpd_client_recipient_rate_limit": "3",
                                         "anvil_rate_time_unit": "60s"})
    c = RawClient(srv.smtpd_port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
    for i in range(3):
        assert c.cmd("RCPT TO:<u%d@example.com>" % i)[0] == 250
    assert c.cmd("RCPT TO:<u9@example.com>") [:2] == (
        450, "4.7.1 Error: too many recipients from 127.0.0.1")
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<a@good.test>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<a@good.test>")[:2] == (
        450, "4.7.1 Error: too much mail from 127.0.0.1")
    c.close()
    # Connections: the first (above) and three more fit; the fifth is refused.
    for _ in range(3):
        c = RawClient(srv.smtpd_port)
        assert c.reply()[0] == 220
        c.close()
    c = RawClient(srv.smtpd_port)
    assert c.reply()[:2] == (421, "4.7.0 mx.example.com Error: too many connections from "
                                  "127.0.0.1")
    c.close()
    log = srv.log_text() + (srv.tmp / "maillog").read_text()
    assert "Connection rate limit exceeded: 5 from 127.0.0.1" in log
    assert "Recipient address rate limit exceeded: 4 from localhost[127.0.0.1]" in log
    # smtpd_client_event_limit_exceptions defaults to $mynetworks: the host itself is exempt.
    srv2 = with_limits(server_factory(), {"smtpd_client_connection_rate_limit": "1",
                                          "smtpd_client_connection_count_limit": "1"})
    conns = []
    for _ in range(3):
        c = RawClient(srv2.smtpd_port)
        assert c.reply()[0] == 220
        conns.append(c)
    for c in conns:
        c.close()


def test_connection_count_limit(server_factory):
    srv = with_limits(server_factory(), {"smtpd_client_event_limit_exceptions": "",
                                         "smtpd_client_connection_count_limit": "2"})
    a, b = RawClient(srv.smtpd_port), RawClient(srv.smtpd_port)
    assert a.reply()[0] == 220 and b.reply()[0] == 220
    c = RawClient(srv.smtpd_port)
    assert c.reply()[:2] == (421, "4.7.0 mx.example.com Error: too many connections from "
                                  "127.0.0.1")
    for x in (a, b, c):
        x.close()


def test_tls_and_auth_rate_limits(server_factory):
    srv = server_factory({"smtpd_sasl_auth_enable": "yes", "smtpd_sasl_failure_delay": "0"},
                         start=False)
    assert srv.cmd("user", "add", "sam", input="pw pw pw\n").returncode == 0
    srv.start()
    srv = with_limits(srv, {"smtpd_client_event_limit_exceptions": "",
                       "smtpd_client_new_tls_session_rate_limit": "1",
                       "smtpd_client_auth_rate_limit": "1"})
    c = RawClient(srv.smtpd_port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example")
    c.starttls()
    c.cmd("EHLO client.example")
    first = c.cmd("AUTH PLAIN AGJvYgB3cm9uZw==")[0]  # bob / wrong
    assert first != 450
    assert c.cmd("AUTH PLAIN AGJvYgB3cm9uZw==")[:2] == (
        450, "4.7.1 Error: too many AUTH commands from 127.0.0.1")
    c.close()
    c = RawClient(srv.smtpd_port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example")
    assert c.cmd("STARTTLS")[:2] == (
        454, "4.7.0 Error: too many new TLS sessions from localhost[127.0.0.1]")
    c.close()
