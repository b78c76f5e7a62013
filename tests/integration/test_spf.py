"""`hongyan spf IP HELO MAILFROM` against a DNS server on loopback: output
shape, exit codes, identities, and DNS failures (SPEC.md; RFC 7208).
The openspf conformance suite is in test_spf_suite.py."""
import pathlib
import socket
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import run  # noqa: E402
from dnsserver import DNSServer  # noqa: E402

ZONE = {
    "example.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 "
                            "exp=why.example.com -all"),
                    ("TXT", "some-other=record")],
    "why.example.com": [("TXT", "%{i} may not send for %{d}, says %{r} (%{c})")],
    "mx.example.com": [("TXT", "v=spf1 a -all"), ("A", "198.51.100.25")],
    "soft.example.com": [("TXT", "v=spf1 mx ~all"),
                         ("MX", (10, "mx1.soft.example.com")),
                         ("MX", (20, "mx2.soft.example.com"))],
    "mx1.soft.example.com": [("A", "198.51.100.1")],
    "mx2.soft.example.com": [("A", "198.51.100.2"), ("AAAA", "2001:db8:2::2")],
    "nospf.example.com": [("TXT", "hello")],
    "slow.example.com": ["TIMEOUT"],
    "broken.example.com": [("RCODE", "SERVFAIL")],
    "loop.example.com": [("TXT", "v=spf1 include:loop.example.com -all")],
    # RFC 6761 names that unbound would answer itself: the forwarder must be asked.
    "mail.test": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
}


@pytest.fixture(scope="module")
def dns():
    with DNSServer(ZONE) as srv:
        yield srv


@pytest.fixture
def cfg(dns, tmp_path):
    path = tmp_path / "main.cf"
    path.write_text("dns_resolver = %s\nmyhostname = mx.receiver.test\n" % dns.address)
    return path


def spf(cfg, *args, timeout=60):
    proc = run(["-c", str(cfg), "spf"] + list(args), timeout=timeout)
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in proc.stderr, proc.stderr
    return proc


def test_pass_prints_the_word_alone_and_exits_0(cfg):
    proc = spf(cfg, "192.0.2.10", "mail.example.com", "alice@example.com")
    assert proc.stdout == "pass\n"
    assert proc.returncode == 0


def test_fail_prints_the_expanded_explanation_and_exits_1(cfg):
    proc = spf(cfg, "203.0.113.9", "mail.example.com", "<alice@example.com>")
    assert proc.stdout.splitlines() == [
        "fail",
        "explanation: 203.0.113.9 may not send for example.com, says mx.receiver.test "
        "(203.0.113.9)"]
    assert proc.returncode == 1


def test_ipv6_client(cfg):
    assert spf(cfg, "2001:db8::7", "mail.example.com", "a@example.com").stdout == "pass\n"
    proc = spf(cfg, "2001:db9::7", "mail.example.com", "a@example.com")
    assert proc.stdout.splitlines()[0] == "fail"
    assert "2001:db9::7" in proc.stdout  # %{c} is the readable form


def test_mx_with_several_exchanges_and_softfail(cfg):
    assert spf(cfg, "198.51.100.2", "h.example.com", "b@soft.example.com").stdout == "pass\n"
    assert spf(cfg, "2001:db8:2::2", "h.example.com", "b@soft.example.com").stdout == "pass\n"
    proc = spf(cfg, "198.51.100.3", "h.example.com", "b@soft.example.com")
    assert proc.stdout == "softfail\n"
    assert proc.returncode == 1


def test_null_sender_checks_postmaster_at_helo(cfg):
    # RFC 7208 2.4: with MAIL FROM:<>, the identity is postmaster@HELO.
    assert spf(cfg, "198.51.100.25", "mx.example.com", "<>").stdout == "pass\n"
    assert spf(cfg, "198.51.100.25", "mx.example.com", "").stdout == "pass\n"
    assert spf(cfg, "198.51.100.26", "mx.example.com", "<>").stdout == "fail\n"


def test_helo_identity_option(cfg):
    # RFC 7208 2.3: the HELO identity, whatever MAIL FROM says.
    proc = spf(cfg, "--helo-identity", "198.51.100.25", "mx.example.com", "x@example.com")
    assert proc.stdout == "pass\n"
    proc = spf(cfg, "198.51.100.25", "mx.example.com", "x@example.com")
    assert proc.stdout.splitlines()[0] == "fail"


def test_none_and_permerror(cfg):
    assert spf(cfg, "192.0.2.1", "h.example.com", "a@nospf.example.com").stdout == "none\n"
    assert spf(cfg, "192.0.2.1", "h.example.com", "a@nowhere.example.com").stdout == "none\n"
    proc = spf(cfg, "192.0.2.1", "h.example.com", "a@loop.example.com")
    assert proc.stdout == "permerror\n"
    assert proc.returncode == 1
    assert "10" in proc.stderr  # the reason names the lookup limit


def test_dns_failures_are_temperror(cfg):
    proc = spf(cfg, "192.0.2.1", "h.example.com", "a@broken.example.com")
    assert proc.stdout == "temperror\n"
    assert proc.returncode == 1
    # No answer at all: the query's timeout turns it into temperror.
    proc = spf(cfg, "192.0.2.1", "h.example.com", "a@slow.example.com")
    assert proc.stdout == "temperror\n"


def test_dead_server_is_temperror(tmp_path):
    # A loopback port with nothing behind it (UDP and TCP).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "main.cf"
    path.write_text("dns_resolver = 127.0.0.1:%d\n" % port)
    proc = spf(path, "192.0.2.1", "h.example.com", "a@example.com", timeout=30)
    assert proc.stdout == "temperror\n"


def test_no_spf_rr_queries(cfg, dns):
    # RFC 7208 3.1: the SPF RR type is not looked up any more.
    spf(cfg, "192.0.2.10", "mail.example.com", "alice@example.com")
    assert dns.queries
    assert all(t != "SPF" for _, t in dns.queries)


@pytest.mark.parametrize("args", [
    [],
    ["192.0.2.1", "h.example.com"],
    ["192.0.2.1", "h.example.com", "a@example.com", "extra"],
    ["not-an-ip", "h.example.com", "a@example.com"],
    ["--bogus", "192.0.2.1", "h.example.com", "a@example.com"],
])
def test_usage_errors_exit_64(cfg, args):
    proc = spf(cfg, *args)
    assert proc.returncode == 64
    assert proc.stdout == ""


def test_bad_resolver_is_a_config_error(tmp_path):
    path = tmp_path / "main.cf"
    path.write_text("dns_resolver = dns.example.com\n")
    proc = spf(path, "192.0.2.1", "h.example.com", "a@example.com")
    assert proc.returncode == 78
    assert "dns_resolver" in proc.stderr


def test_reserved_test_domain_reaches_the_configured_server(cfg, dns):
    """dns_resolver is the authority even for .test (unbound has it built in)."""
    r = spf(cfg, "192.0.2.7", "helo.test", "a@mail.test")
    assert r.stdout.splitlines()[0] == "pass", r.stdout + r.stderr
    assert ("mail.test", "TXT") in dns.queries
