"""smtpd_upstream_proxy_protocol = haproxy behind a real HAProxy (Debian
haproxy) with send-proxy (v1) and send-proxy-v2: the address in the header
is the client for logs, Received:, mynetworks and the per-client limit; a v2
LOCAL health check (option smtpchk) uses the real peer; a connection
without a header is closed without a greeting; a malformed one is dropped."""
import os
import shutil
import smtplib
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_for, wait_port

HAPROXY = shutil.which("haproxy")
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")


class HAProxy:
    def __init__(self, tmp, backend_port):
        self.tmp = tmp
        self.v1_port, self.v2_port = free_port(), free_port()
        # Unix socket paths are limited to 107 octets: a short directory.
        self.sockdir = tempfile.mkdtemp(prefix="hyha", dir="/tmp")
        self.stats = os.path.join(self.sockdir, "haproxy.sock")
        self.cfg = tmp / "haproxy.cfg"
        self.cfg.write_text(f"""
global
    stats socket {self.stats} mode 600 level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp_v1
    bind 127.0.0.1:{self.v1_port}
    default_backend hongyan_v1
frontend smtp_v2
    bind 127.0.0.1:{self.v2_port}
    default_backend hongyan_v2
backend hongyan_v1
    server n1 127.0.0.1:{backend_port} send-proxy
backend hongyan_v2
    option smtpchk EHLO haproxy.test
    server n1 127.0.0.1:{backend_port} send-proxy-v2 check check-send-proxy inter 300ms
""")
        self.log = open(tmp / "haproxy.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_port(self.v1_port, proc=self.proc)
        wait_port(self.v2_port, proc=self.proc)
        wait_for(lambda: os.path.exists(self.stats))

    def command(self, line):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats)
            s.sendall(line.encode() + b"\n")
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return out.decode()
                out += b

    def server_status(self, backend):
        for line in self.command("show stat").splitlines():
            cols = line.split(",")
            if len(cols) > 17 and cols[0] == backend and cols[1] == "n1":
                return cols[17]
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def proxied(server_factory, tmp_path):
    srv = server_factory({
        "smtpd_upstream_proxy_protocol": "haproxy",
        "smtpd_upstream_proxy_timeout": "1s",
        "smtpd_peername_lookup": "no",
        # Only the "client" 127.0.0.5 may relay: HAProxy itself (127.0.0.1) may not.
        "mynetworks": "127.0.0.5/32",
        "relayhost": "[127.0.0.1]:%d" % free_port(),
        "minimal_backoff_time": "300s", "maximal_backoff_time": "600s",
    })
    hap = HAProxy(tmp_path, srv.smtpd_port)
    yield srv, hap
    hap.stop()


def send_from(port, source, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=20, source_address=(source, 0)) as c:
        c.ehlo("client.test")
        return c.sendmail("alice@example.com", [rcpt],
                          "From: alice@example.com\r\nSubject: %s\r\n\r\nhi\r\n" % subject)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_client_address_comes_from_the_header(proxied, version):
    srv, hap = proxied
    port = hap.v1_port if version == "v1" else hap.v2_port
    send_from(port, "127.0.0.7", "bob@example.com", "via " + version)
    assert wait_for(lambda: len(srv.messages("example.com", "bob")) == 1)
    data = srv.messages("example.com", "bob")[0].read_bytes()
    received = data.split(b"Received: ", 1)[1].split(b"\r\n\r\n", 1)[0]
    assert b"[127.0.0.7]" in received, received
    assert b"[127.0.0.1]" not in received
    log = srv.log_text()
    assert "client=unknown[127.0.0.7]" in log
    # mynetworks sees the PROXY address: 127.0.0.5 may relay, 127.0.0.7 may not.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_from(port, "127.0.0.7", "carol@remote.test", "relay attempt")
    send_from(port, "127.0.0.5", "carol@remote.test", "relay allowed")


def test_per_client_limit_counts_the_proxied_address(server_factory, tmp_path):
    srv = server_factory({"smtpd_upstream_proxy_protocol": "haproxy",
                          "smtpd_peername_lookup": "no",
                          "smtpd_client_connection_count_limit": "1",
                          # The test clients are in mynetworks, which is exempt by default.
                          "smtpd_client_event_limit_exceptions": ""})
    hap = HAProxy(tmp_path, srv.smtpd_port)
    try:
        # Every connection arrives from HAProxy's 127.0.0.1, yet two clients are two clients.
        a = smtplib.SMTP("127.0.0.1", hap.v1_port, timeout=10, source_address=("127.0.0.8", 0))
        b = smtplib.SMTP("127.0.0.1", hap.v1_port, timeout=10, source_address=("127.0.0.9", 0))
        assert a.noop()[0] == 250 and b.noop()[0] == 250
        # A second session from 127.0.0.8 is over its limit.
        with pytest.raises(smtplib.SMTPConnectError) as e:
            smtplib.SMTP("127.0.0.1", hap.v1_port, timeout=10, source_address=("127.0.0.8", 0))
        assert e.value.smtp_code == 421
        a.quit()
        b.quit()
    finally:
        hap.stop()


def test_local_health_checks_keep_the_real_peer(proxied):
    srv, hap = proxied
    assert wait_for(lambda: hap.server_status("hongyan_v2") == "UP", timeout=15), \
        hap.command("show stat")
    # The checks are sessions from HAProxy itself (the LOCAL command), not refusals.
    # (The test harness's own port probe, which sends nothing, is the only refusal.)
    assert "disconnect from unknown[127.0.0.1] ehlo=1 quit=1" in srv.log_text()
    assert "dropped: not a PROXY" not in srv.log_text()


def test_no_header_closed_without_greeting(proxied):
    srv, _ = proxied
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
        data = s.recv(1024)
    elapsed = time.monotonic() - start
    assert data == b""
    assert 0.8 <= elapsed < 5, elapsed
    assert wait_for(lambda: "no PROXY header within smtpd_upstream_proxy_timeout"
                    in srv.log_text())


@pytest.mark.parametrize("header,why", [
    (b"EHLO client.test\r\n", "not a PROXY protocol header"),
    (b"PROXY TCP4 127.0.0.300 127.0.0.1 1 25\r\n", "bad address"),
    (b"PROXY TCP4 127.0.0.3 127.0.0.1 99999 25\r\n", "bad port"),
    (b"PROXY " + b"A" * 120 + b"\r\n", "longer than 107"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12, "version other than 2"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04" + b"\x00" * 4, "too short"),
])
def test_malformed_header_is_logged_and_dropped(proxied, header, why):
    srv, _ = proxied
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
        s.sendall(header)
        # Closed with unread bytes, the kernel may answer with a reset: no greeting either way.
        try:
            assert s.recv(1024) == b""
        except ConnectionResetError:
            pass
    assert wait_for(lambda: why in srv.log_text()), srv.log_text()[-2000:]


def test_v2_header_by_hand_with_tlvs_and_pipelined_smtp(proxied):
    """A v2 header with a TLV after the addresses, and the client's EHLO in
    the same segment: nothing past the header may be eaten."""
    srv, _ = proxied
    addrs = socket.inet_aton("192.0.2.44") + socket.inet_aton("127.0.0.1") + struct.pack(
        "!HH", 40000, 25)
    tlv = b"\x04" + struct.pack("!H", 3) + b"abc"  # PP2_TYPE_NOOP
    body = addrs + tlv
    header = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", len(body)) + body
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
        s.sendall(header)
        assert s.recv(1024).startswith(b"220 ")
        s.sendall(b"EHLO x.test\r\nQUIT\r\n")
        got = b""
        while b"221" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    assert b"250" in got and b"221" in got
    assert "connect from unknown[192.0.2.44]" in srv.log_text()


def test_smtps_tls_starts_after_the_header(server_factory):
    """On smtps_listen the PROXY header comes first, then the TLS handshake;
    a refused connection counts in the metrics."""
    import ssl
    smtps, mport = free_port(), free_port()
    srv = server_factory({"smtpd_upstream_proxy_protocol": "haproxy",
                          "smtpd_upstream_proxy_timeout": "1s",
                          "smtpd_peername_lookup": "no",
                          "smtps_listen": "127.0.0.1:%d" % smtps,
                          "metrics_listen": "127.0.0.1:%d" % mport})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", smtps), timeout=10) as raw:
        raw.sendall(b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 465\r\n")
        with ctx.wrap_socket(raw) as tls:
            assert tls.recv(1024).startswith(b"220 ")
            tls.sendall(b"QUIT\r\n")
            assert tls.recv(1024).startswith(b"221")
    assert wait_for(lambda: "connect from unknown[198.51.100.9]" in srv.log_text())
    with socket.create_connection(("127.0.0.1", srv.smtpd_port), timeout=10) as s:
        s.sendall(b"HELO nope\r\n")
        try:
            s.recv(1024)
        except ConnectionResetError:
            pass
    import urllib.request
    def refused():
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
            text = r.read().decode()
        line = [l for l in text.splitlines()
                if l.startswith('hongyan_connections_refused_total{reason="proxy_protocol"}')]
        return float(line[0].split()[-1]) >= 1
    assert wait_for(refused)
