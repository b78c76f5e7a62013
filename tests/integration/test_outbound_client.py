"""The SMTP client's behaviour at the edges, against real peers on loopback:
a server that never greets (the per-stage timeout), one that greets with
garbage or 421 (the next MX is tried), an IPv6-only MX, the SNI the client
sends, the per-destination concurrency limit, and BODY=8BITMIME passed on.

Two MX hosts on one port are told apart by address: 127.0.0.2 (a raw socket
the test controls) and 127.0.0.1 (aiosmtpd), both on the smtp_tcp_port.
"""
import asyncio
import os
import signal
import smtplib
import socket
import threading
import time

import pytest

from conftest import free_port, wait_for
from dnsserver import DNSServer
from smtppeer import Peer
from test_outbound import logs, make_server, sendmail


class RawPeer:
    """A TCP listener that answers each connection with fixed bytes (or
    nothing) and then reads until the client goes away."""

    def __init__(self, host, port, greeting):
        self.greeting = greeting
        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.threads = []

    def _serve(self, conn):
        with conn:
            conn.settimeout(0.2)
            if self.greeting:
                conn.sendall(self.greeting)
            deadline = time.monotonic() + 60
            while not self.stopping and time.monotonic() < deadline:
                try:
                    if not conn.recv(4096):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def __enter__(self):
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()


def two_mx_zone():
    return {
        "example.net": [("MX", (10, "mx1.example.net")), ("MX", (20, "mx2.example.net"))],
        "mx1.example.net": [("A", "127.0.0.2")],
        "mx2.example.net": [("A", "127.0.0.1")],
    }


def test_silent_server_times_out_at_the_greeting_and_defers(server_factory):
    port = free_port()
    # Listening but never accepting: the kernel completes the TCP handshake,
    # nobody ever says 220.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", port))
    silent.listen(8)
    try:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % port,
            "smtp_helo_timeout": "2s",
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        })
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=30), logs(srv)
        text = logs(srv)
        assert "timed out while receiving the initial server greeting" in text, text
        assert "status=sent" not in text and "status=bounced" not in text
        assert len(srv.cmd("queue").stdout.strip().splitlines()) >= 1
    finally:
        silent.close()


def test_garbage_greeting_then_the_next_mx_delivers(server_factory):
    port = free_port()
    with RawPeer("127.0.0.2", port, b"hello, this is not SMTP\r\n") as bad, \
            Peer(port=port) as good, DNSServer(two_mx_zone()) as dns:
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(port)})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: good.messages, timeout=30), logs(srv)
        assert bad.connections >= 1
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=10), logs(srv)
        assert "relay=mx2.example.net[127.0.0.1]:%d" % port in logs(srv)
        assert good.messages[0].rcpt_tos == ["bob@example.net"]


def test_421_greeting_then_the_next_mx_delivers(server_factory):
    port = free_port()
    with RawPeer("127.0.0.2", port, b"421 4.3.2 mx1 is shutting down\r\n") as busy, \
            Peer(port=port) as good, DNSServer(two_mx_zone()) as dns:
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(port)})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: good.messages, timeout=30), logs(srv)
        assert busy.connections >= 1
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=10), logs(srv)
        assert "status=bounced" not in logs(srv)


def test_421_greeting_at_the_only_mx_defers_with_its_text(server_factory):
    port = free_port()
    with RawPeer("127.0.0.1", port, b"421 4.3.2 mx1 is shutting down\r\n"):
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % port,
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        })
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=30), logs(srv)
        assert "mx1 is shutting down" in logs(srv)
        assert "status=bounced" not in logs(srv)


def test_ipv6_only_mx(server_factory):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with Peer(hostname="::1") as mx, DNSServer({
            "example.net": [("MX", (10, "mx6.example.net"))],
            "mx6.example.net": [("AAAA", "::1")]}) as dns:
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx.port)})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: mx.messages, timeout=30), logs(srv)
        assert wait_for(lambda: "relay=mx6.example.net[::1]:%d" % mx.port in logs(srv),
                        timeout=10), logs(srv)


def test_sni_is_the_mx_host_name(server_factory, tmp_path):
    names = []
    with Peer(tmp=tmp_path, tls=True) as mx, DNSServer({
            "example.net": [("MX", (10, "mx.example.net"))],
            "mx.example.net": [("A", "127.0.0.1")]}) as dns:
        mx.context.sni_callback = lambda sslobj, name, ctx: names.append(name)
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx.port)})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: mx.messages, timeout=30), logs(srv)
        assert names == ["mx.example.net"], names
        assert wait_for(lambda: "TLS connection established" in logs(srv), timeout=10), logs(srv)


def test_sni_is_not_sent_to_an_address_literal(server_factory, tmp_path):
    names = []
    with Peer(tmp=tmp_path, tls=True) as mx:
        mx.context.sni_callback = lambda sslobj, name, ctx: names.append(name)
        srv = make_server(server_factory, None, {"relayhost": "[127.0.0.1]:%d" % mx.port})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: mx.messages, timeout=30), logs(srv)
        # RFC 6066 section 3: no literal IP addresses in SNI. The callback
        # sees None when the client sent no server_name.
        assert names in ([], [None]), names


def test_destination_concurrency_limit(server_factory):
    """Ten messages to one slow next hop with a limit of 2: never more than
    two transactions at the peer at once."""
    state = {"now": 0, "max": 0}
    lock = threading.Lock()
    with Peer() as mx:
        handler = mx.controller.handler
        original = handler.handle_DATA

        async def slow_data(server, session, envelope):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            await asyncio.sleep(0.3)
            with lock:
                state["now"] -= 1
            return await original(server, session, envelope)

        handler.handle_DATA = slow_data
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % mx.port,
            "smtp_destination_concurrency_limit": "2",
        }, start=False)
        for i in range(10):
            sendmail(srv, ["user%d@example.net" % i], body="Subject: m%d\n\nbody\n" % i)
        srv.start()
        assert wait_for(lambda: len(mx.messages) == 10, timeout=60), logs(srv)
        assert 1 <= state["max"] <= 2, state


def test_stalled_destination_does_not_hold_the_others(server_factory):
    """The queue manager's lines per next hop (docs/queue.md): a next hop
    that accepts and then stalls in DATA takes its own limit of slots (3,
    from default_destination_concurrency_limit, counted at the peer) and no
    more, and mail to another next hop is delivered meanwhile. With one
    global cap of 3 (the code before) the second message waited for the
    first three."""
    state = {"now": 0, "max": 0}
    lock = threading.Lock()
    release = threading.Event()
    with Peer() as slow, Peer() as fast:
        handler = slow.controller.handler
        original = handler.handle_DATA

        async def stalled_data(server, session, envelope):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            deadline = time.monotonic() + 30
            while not release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            with lock:
                state["now"] -= 1
            return await original(server, session, envelope)

        handler.handle_DATA = stalled_data
        srv = make_server(server_factory, None, {
            "default_destination_concurrency_limit": "3",
            "smtp_connection_cache_time_limit": "0s",
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        }, start=False)
        table = srv.tmp / "transport"
        table.write_text("slow.test smtp:[127.0.0.1]:%d\nfast.test smtp:[127.0.0.1]:%d\n"
                         % (slow.port, fast.port))
        os.chmod(table, 0o644)
        srv.settings["transport_maps"] = "texthash:%s" % table
        srv.write_config()
        srv.start()
        try:
            for i in range(8):
                sendmail(srv, ["user%d@slow.test" % i], body="Subject: s%d\n\nbody\n" % i)
            assert wait_for(lambda: state["now"] == 3, timeout=20), (state, logs(srv))
            t0 = time.monotonic()
            sendmail(srv, ["bob@fast.test"], body="Subject: fast\n\nbody\n")
            assert wait_for(lambda: fast.messages, timeout=10), logs(srv)
            took = time.monotonic() - t0
            # The stalled next hop still holds exactly its limit, none delivered.
            assert state["now"] == 3 and not slow.messages, state
            assert took < 5, took
            # A stop lets the three running finish and starts none of the five
            # waiting, which count no attempt: after the restart they go at
            # once, not after minimal_backoff_time (300s here).
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            release.set()
            srv.proc.wait(timeout=20)
            assert len(slow.messages) == 3, (len(slow.messages), logs(srv))
            assert "status=deferred" not in logs(srv), logs(srv)
            srv.stop()
            srv.start()
        finally:
            release.set()
        assert wait_for(lambda: len(slow.messages) == 8, timeout=20), logs(srv)
        assert state["max"] == 3, state


def test_body_8bitmime_is_passed_on(server_factory):
    with Peer() as mx:
        srv = make_server(server_factory, None, {"relayhost": "[127.0.0.1]:%d" % mx.port,
                                                 "mynetworks": "127.0.0.0/8"})
        body = "Subject: caf\u00e9\r\nContent-Type: text/plain; charset=utf-8\r\n" \
               "Content-Transfer-Encoding: 8bit\r\n\r\nd\u00e9j\u00e0 vu\r\n"
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
            c.ehlo("client.test")
            c.sendmail("alice@local.test", ["bob@example.net"], body.encode(),
                       mail_options=["BODY=8BITMIME"])
        assert wait_for(lambda: mx.messages, timeout=30), logs(srv)
        assert any(o.upper() == "BODY=8BITMIME" for o in mx.mail_froms[0][1]), mx.mail_froms
        assert "d\u00e9j\u00e0 vu".encode() in mx.messages[0].data


def test_dns_servfail_defers_then_delivers_after_flush(server_factory):
    """RFC 5321 4.5.4.1 spirit: a temporary DNS failure is never a bounce."""
    with Peer() as mx, DNSServer({"example.net": [("RCODE", "SERVFAIL")]}) as dns:
        srv = make_server(server_factory, dns, {
            "smtp_tcp_port": str(mx.port),
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        })
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=30), logs(srv)
        assert "try again" in logs(srv)
        assert "status=bounced" not in logs(srv)
        dns.set("example.net", [("MX", (10, "mx.example.net"))])
        dns.set("mx.example.net", [("A", "127.0.0.1")])
        # The resolver may keep the SERVFAIL for a few seconds (unbound does,
        # for 5): flush until the retry sees the new answer.
        for _ in range(15):
            assert srv.cmd("queue", "flush").returncode == 0
            if wait_for(lambda: mx.messages, timeout=3):
                break
        assert mx.messages, logs(srv)
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=10), logs(srv)


def test_nonexistent_domain_bounces(server_factory):
    with Peer() as mx, DNSServer({"example.net": [("MX", (10, "mx.example.net"))]}) as dns:
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx.port)})
        sendmail(srv, ["bob@nowhere.example.net"])
        assert wait_for(lambda: "status=bounced" in logs(srv), timeout=30), logs(srv)
        assert "5.1.2" in logs(srv) and "Host not found" in logs(srv)
        assert mx.connections_after_start == 0
