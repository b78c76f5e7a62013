"""`hongyan doctor` against a DNS server the test starts (dnslib, reached
through dns_resolver) and aiosmtpd peers on loopback.

The zone is complete for example.com with mx.example.com at 192.0.2.10
(given with --public-address: the reverse zone 2.0.192.in-addr.arpa is
served by the test server): every check is ok. Then each record is removed
or broken in turn (the right FAIL and the right zone line), DNS failures
(SERVFAIL, timeout) are reported as such, the port-25 probe meets an open
and a closed port, and the relay check meets STARTTLS + AUTH peers that
accept or refuse the credentials.
"""
import asyncio  # noqa: F401  (aiosmtpd needs the loop machinery importable)
import json
import os
import pwd
import re
import ssl
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import free_port, run  # noqa: E402
from dnsserver import DNSServer  # noqa: E402
from smtppeer import make_cert  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

PUB = "192.0.2.10"
REV = "10.2.0.192.in-addr.arpa"
ME = pwd.getpwuid(os.geteuid()).pw_name
GOOD_SPF = "v=spf1 mx ip4:192.0.2.10 -all"
GOOD_DMARC = "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"


def parse_txt_line(line):
    """(name, joined text) of a zone-file TXT line as doctor and keygen print them."""
    m = re.match(r'^(\S+)\. IN TXT (?:\( )?(.*?)(?: \))?$', line)
    assert m, line
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
    assert strings and all(len(s) <= 255 for s in strings), line
    return m.group(1), "".join(strings)


# ---- SMTP peers ----------------------------------------------------------


class Handler:
    def __init__(self):
        self.mail = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail.append(address)
        envelope.mail_from = address
        return "250 2.1.0 Ok"


class Peer:
    """aiosmtpd on a random loopback port; with tmp, STARTTLS and AUTH required."""

    def __init__(self, tmp=None, users=None, exclude=None):
        self.port = free_port()
        self.handler = Handler()
        self.users = users
        self.auth = []
        self.lock = threading.Lock()
        kwargs = {}
        if tmp is not None:
            cert, key = make_cert(tmp)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert), str(key))
            kwargs.update(tls_context=ctx, require_starttls=True)
        if users is not None:
            kwargs.update(authenticator=self._auth, auth_required=True,
                          auth_require_tls=tmp is not None)
        if exclude:
            kwargs["auth_exclude_mechanism"] = list(exclude)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     server_hostname="relay.test", **kwargs)

    def _auth(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        ok = self.users.get(user) == auth_data.password.decode()
        with self.lock:
            self.auth.append((user, mechanism, ok))
        return AuthResult(success=ok, handled=ok)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


# ---- fixtures ---------------------------------------------------------------


class Setup:
    def __init__(self, tmp, dns):
        self.tmp = tmp
        self.dns = dns
        self.cfg = tmp / "main.cf"
        self.settings = {
            "data_directory": str(tmp / "data"),
            "myhostname": "mx.example.com",
            "mydomain": "example.com",
            "mydestination": "$myhostname, localhost, example.com",
            "mail_owner": ME,
            "dns_resolver": dns.address,
        }
        self.write()

    def write(self):
        self.cfg.write_text("".join("%s = %s\n" % kv for kv in self.settings.items()))

    def keygen(self, *args):
        r = run(["-c", str(self.cfg), "dkim", "keygen", "example.com"] + list(args))
        assert r.returncode == 0, r.stderr
        lines = r.stdout.strip().splitlines()
        assert len(lines) == 1, r.stdout
        return lines[0]

    def doctor(self, *args, probe=None, public=PUB):
        cmd = ["-c", str(self.cfg), "doctor"]
        if public:
            cmd += ["--public-address", public]
        if probe:
            cmd += ["--probe", probe]
        r = run(cmd + list(args), timeout=120)
        # Under sanitizers a report goes to stderr: fail on it.
        assert "AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
        return r


def good_zone(dkim_txt):
    return {
        "example.com": [("MX", (10, "mx.example.com")), ("TXT", GOOD_SPF),
                        ("TXT", "google-site-verification=abc")],
        "mx.example.com": [("A", PUB)],
        REV: [("PTR", "mx.example.com")],
        "mail._domainkey.example.com": [("TXT", dkim_txt)],
        "_dmarc.example.com": [("TXT", GOOD_DMARC)],
    }


@pytest.fixture
def env(tmp_path):
    with DNSServer({}) as dns:
        s = Setup(tmp_path, dns)
        s.dkim_line = s.keygen()
        name, txt = parse_txt_line(s.dkim_line)
        assert name == "mail._domainkey.example.com"
        for n, recs in good_zone(txt).items():
            dns.set(n, recs)
        with Peer() as mx:
            s.mx = mx
            s.probe = "127.0.0.1:%d" % mx.port
            yield s


def lines(out):
    """{check name: (status, rest)} from the report's check lines."""
    got = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|warn|FAIL) +(\S+) +(found: .*)$", line)
        if m:
            got[m.group(2)] = (m.group(1), m.group(3))
    return got


def published(out):
    """The zone-file lines under "Publish these records"."""
    if "Publish these records" not in out:
        return []
    block = out.split("Publish these records (zone-file lines):\n", 1)[1]
    return block.split("\n\n", 1)[0].strip().splitlines()


# ---- all ok -------------------------------------------------------------------


def test_complete_zone_all_ok(env):
    r = env.doctor(probe=env.probe)
    assert r.returncode == 0, r.stdout + r.stderr
    got = lines(r.stdout)
    assert list(got) == ["a", "mx", "ptr", "spf", "dkim", "dmarc", "tlsa", "mta-sts", "tlsrpt",
                         "network"], r.stdout
    assert all(v[0] == "ok" for v in got.values()), r.stdout
    assert "mx.example.com has 192.0.2.10" in got["a"][1]
    assert "resolves back to 192.0.2.10" in got["ptr"][1]
    assert "evaluates to pass for 192.0.2.10" in got["spf"][1]
    assert "mail._domainkey.example.com matches" in got["dkim"][1]
    assert "connected to [127.0.0.1]:%d: 220" % env.mx.port in got["network"][1]
    assert "Publish" not in r.stdout
    assert env.mx.handler.mail == []  # the probe sends no mail


def test_json(env):
    env.dns.remove("_dmarc.example.com")
    r = env.doctor("--json", probe=env.probe)
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["domain"] == "example.com"
    assert doc["public_address"] == PUB
    assert doc["public_address_source"] == "--public-address"
    assert doc["failed"] is True
    checks = {c["name"]: c for c in doc["checks"]}
    assert [c["name"] for c in doc["checks"]] == ["a", "mx", "ptr", "spf", "dkim", "dmarc",
                                                 "tlsa", "mta-sts", "tlsrpt", "network"]
    for c in doc["checks"]:
        assert set(c) >= {"name", "status", "found", "expected", "records_to_publish"}
    assert checks["spf"]["status"] == "ok"
    assert checks["dmarc"]["status"] == "FAIL"
    assert checks["dmarc"]["records_to_publish"] == [
        '_dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.com"']


# ---- each record missing or wrong ---------------------------------------------

CASES = [
    # (id, name to change, new records or None to remove, check, found text, zone line)
    ("a-missing", "mx.example.com", None, "a", "mx.example.com has no A or AAAA record",
     "mx.example.com. IN A 192.0.2.10"),
    ("a-wrong", "mx.example.com", [("A", "192.0.2.99")], "a", "not this host's address",
     "mx.example.com. IN A 192.0.2.10"),
    ("mx-missing", "example.com", [("TXT", GOOD_SPF)], "mx", "example.com has no MX record",
     "example.com. IN MX 10 mx.example.com."),
    ("mx-wrong", "example.com", [("MX", (10, "mail.other.test")), ("TXT", GOOD_SPF)], "mx",
     "not mx.example.com", "example.com. IN MX 10 mx.example.com."),
    ("spf-missing", "example.com", [("MX", (10, "mx.example.com"))], "spf",
     "example.com has no SPF record", 'example.com. IN TXT "v=spf1 mx ip4:192.0.2.10 ~all"'),
    ("spf-wrong", "example.com",
     [("MX", (10, "mx.example.com")), ("TXT", "v=spf1 ip4:198.51.100.1 -all")], "spf",
     "evaluates to fail for 192.0.2.10",
     'example.com. IN TXT "v=spf1 ip4:192.0.2.10 ip4:198.51.100.1 -all"'),
    ("spf-unparseable", "example.com",
     [("MX", (10, "mx.example.com")), ("TXT", "v=spf1 ip4:192.0.2.300 -all")], "spf",
     "does not parse", 'example.com. IN TXT "v=spf1 mx ip4:192.0.2.10 ~all"'),
    ("dkim-missing", "mail._domainkey.example.com", None, "dkim",
     "mail._domainkey.example.com has no TXT record", "DKIM"),
    ("dmarc-missing", "_dmarc.example.com", None, "dmarc", "_dmarc.example.com has no DMARC",
     '_dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.com"'),
    ("dmarc-unparseable", "_dmarc.example.com", [("TXT", "v=DMARC1; p=maybe")], "dmarc",
     'does not parse: invalid p= "maybe"',
     '_dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.com"'),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_record_missing_or_wrong(env, case):
    _, name, records, check, found, zone_line = case
    if records is None:
        env.dns.remove(name)
    else:
        env.dns.set(name, records)
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1, r.stdout + r.stderr
    got = lines(r.stdout)
    assert got[check][0] == "FAIL", r.stdout
    assert found in got[check][1], r.stdout
    if zone_line == "DKIM":
        zone_line = env.dkim_line  # the very line `dkim keygen` printed
    assert zone_line in published(r.stdout), r.stdout
    # Other checks are not blamed for this record (the A record feeds FCrDNS).
    for other, (status, _) in got.items():
        if other not in (check, "ptr"):
            assert status == "ok", r.stdout


def test_ptr_missing_says_provider_not_registrar(env):
    env.dns.remove(REV)
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["ptr"][0] == "FAIL" and "192.0.2.10 has no PTR record" in got["ptr"][1]
    assert "set at the provider that owns the address" in r.stdout
    assert "not at the domain registrar" in r.stdout
    assert "10.2.0.192.in-addr.arpa. IN PTR mx.example.com." in r.stdout


def test_ptr_wrong_name(env):
    env.dns.set(REV, [("PTR", "host-10.provider.test")])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["ptr"][0] == "FAIL"
    assert "PTR of 192.0.2.10 is host-10.provider.test, not mx.example.com" in got["ptr"][1]


def test_dkim_record_of_another_key(env, tmp_path):
    # A second key's record published where ours should be.
    (tmp_path / "other").mkdir()
    other = Setup(tmp_path / "other", env.dns)
    _, txt = parse_txt_line(other.keygen())
    env.dns.set("mail._domainkey.example.com", [("TXT", txt)])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["dkim"][0] == "FAIL"
    assert "does not match" in got["dkim"][1]
    assert env.dkim_line in published(r.stdout)
    # doctor points to the command that prints the right record again, and it does.
    assert "hongyan dkim show example.com" in r.stdout
    shown = run(["-c", str(env.cfg), "dkim", "show", "example.com"])
    assert shown.returncode == 0 and shown.stdout.strip() == env.dkim_line, shown


def test_dkim_no_key_hints_keygen(env):
    keydir = env.tmp / "data" / "dkim" / "example.com"
    for f in keydir.iterdir():
        f.unlink()
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["dkim"][0] == "FAIL" and "no DKIM key for example.com" in got["dkim"][1]
    assert "hongyan dkim keygen example.com" in r.stdout


def test_dkim_second_key_ed25519(env):
    line = env.keygen("--algorithm", "ed25519", "--selector", "mail-ed25519")
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    assert "mail-ed25519._domainkey.example.com has no TXT record" in lines(r.stdout)["dkim"][1]
    assert line in published(r.stdout)
    name, txt = parse_txt_line(line)
    env.dns.set(name, [("TXT", txt)])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 0, r.stdout
    assert "(ed25519)" in lines(r.stdout)["dkim"][1]


def test_two_spf_records(env):
    env.dns.set("example.com", [("MX", (10, "mx.example.com")), ("TXT", GOOD_SPF),
                                ("TXT", "v=spf1 -all")])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["spf"][0] == "FAIL" and "2 SPF records" in got["spf"][1]


def test_spf_too_many_lookups(env):
    incs = " ".join("include:i%d.example.com" % i for i in range(11))
    env.dns.set("example.com", [("MX", (10, "mx.example.com")),
                                ("TXT", "v=spf1 %s ip4:192.0.2.10 -all" % incs)])
    for i in range(11):
        env.dns.set("i%d.example.com" % i, [("TXT", "v=spf1 -all")])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["spf"][0] == "FAIL", r.stdout
    assert "permerror: more than 10 DNS-querying terms" in got["spf"][1]
    assert "at most 10 DNS-querying terms" in r.stdout


def test_dmarc_p_none_is_the_first_step_with_the_next_one_said(env):
    # doctor recommends p=none to start; finding it is not a problem, and the
    # advice names the next step (one consistent message, not a warning).
    env.dns.set("_dmarc.example.com", [("TXT", "v=DMARC1; p=none")])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 0, r.stdout
    got = lines(r.stdout)
    assert got["dmarc"][0] == "ok", r.stdout
    assert "Next step, once the aggregate reports show only your own mail, passing: " \
        "p=quarantine." in r.stdout


# ---- DNS failures are not missing records -------------------------------------

FAILURES = [
    ("spf", "example.com", [("MX", (10, "mx.example.com"))]),
    ("dmarc", "_dmarc.example.com", []),
    ("dkim", "mail._domainkey.example.com", []),
    ("ptr", REV, []),
]


@pytest.mark.parametrize("how", ["SERVFAIL", "TIMEOUT"])
@pytest.mark.parametrize("failure", FAILURES, ids=[f[0] for f in FAILURES])
def test_dns_failure_reported_as_such(env, failure, how):
    check, name, keep = failure
    extra = [("RCODE", "SERVFAIL")] if how == "SERVFAIL" else ["TIMEOUT"]
    env.dns.set(name, keep + extra)
    r = env.doctor(probe=env.probe)
    got = lines(r.stdout)
    assert got[check][0] == "warn", r.stdout
    assert "could not check: DNS temporary failure" in got[check][1]
    found = got[check][1].split("; expected:")[0]
    assert "has no" not in found and "does not match" not in found, r.stdout
    assert published(r.stdout) == [], r.stdout
    assert r.returncode == 0, r.stdout


# ---- public address ------------------------------------------------------------


def test_public_address_from_config(env):
    env.settings["doctor_public_address"] = PUB
    env.write()
    r = env.doctor(probe=env.probe, public=None)
    assert r.returncode == 0, r.stdout
    assert "public address 192.0.2.10 from doctor_public_address" in r.stdout


def test_bad_public_address(env):
    assert env.doctor(public="not-an-ip").returncode == 64
    env.settings["doctor_public_address"] = "nope"
    env.write()
    r = env.doctor(public=None)
    assert r.returncode == 78
    assert "doctor_public_address" in r.stderr


def test_usage(env):
    r = run(["-c", str(env.cfg), "doctor", "--bogus"])
    assert r.returncode == 64
    assert "usage: hongyan doctor" in r.stderr


# ---- network --------------------------------------------------------------------


def test_port25_closed(env):
    port = free_port()  # nothing listens there
    r = env.doctor(probe="127.0.0.1:%d" % port)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["network"][0] == "FAIL"
    assert "cannot reach [127.0.0.1]:%d" % port in got["network"][1]
    assert "relayhost = [smtp.provider.example]:587" in r.stdout


def relay_setup(env, peer, password):
    maps = env.tmp / "sasl_passwd"
    maps.write_text("[127.0.0.1]:%d user@example.com:%s\n" % (peer.port, password))
    os.chmod(maps, 0o600)  # root's alone, as docs/security.md asks
    env.settings.update({
        "relayhost": "[127.0.0.1]:%d" % peer.port,
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": "texthash:%s" % maps,
    })
    env.write()
    # With a relay, SPF must authorise the relay's address.
    env.dns.set("example.com", [("MX", (10, "mx.example.com")),
                                ("TXT", "v=spf1 mx ip4:127.0.0.1 -all")])


def test_relay_accepts_credentials(env, tmp_path):
    with Peer(tmp_path, users={"user@example.com": "s3cret"}) as relay:
        relay_setup(env, relay, "s3cret")
        r = env.doctor()
        assert r.returncode == 0, r.stdout + r.stderr
        got = lines(r.stdout)
        assert got["network"][0] == "ok", r.stdout
        assert "[127.0.0.1]:%d: TLS ok, AUTH as user@example.com accepted" % relay.port \
            in got["network"][1]
        assert got["spf"][0] == "ok" and "127.0.0.1" in got["spf"][1], r.stdout
        assert relay.auth == [("user@example.com", "PLAIN", True)]
        assert relay.handler.mail == []
        assert "s3cret" not in r.stdout + r.stderr


def test_relay_password_file_mail_owner_can_read_is_warn(env, tmp_path):
    with Peer(tmp_path, users={"user@example.com": "s3cret"}) as relay:
        relay_setup(env, relay, "s3cret")
        os.chmod(env.tmp / "sasl_passwd", 0o644)
        env.settings["mail_owner"] = "hongyan"  # the server's user, whom the warning is about
        env.write()
        r = env.doctor()
        got = lines(r.stdout)
        assert got["network"][0] == "warn", r.stdout
        assert "TLS ok, AUTH as user@example.com accepted" in got["network"][1]
        assert "smtp_sasl_password_maps: readable by mail_owner" in got["network"][1]
        assert "Make the relay password files root:root 0600" in r.stdout, r.stdout


def test_relay_refuses_credentials(env, tmp_path):
    with Peer(tmp_path, users={"user@example.com": "right"}) as relay:
        relay_setup(env, relay, "wrong")
        r = env.doctor()
        assert r.returncode == 1, r.stdout
        got = lines(r.stdout)
        assert got["network"][0] == "FAIL"
        assert "SASL authentication failed" in got["network"][1], r.stdout
        assert "said: 535 5.7.8 Authentication credentials invalid" in got["network"][1]
        assert relay.auth == [("user@example.com", "PLAIN", False)]
        assert "wrong" not in r.stdout.replace("wrong or", "")


def test_relay_auth_login(env, tmp_path):
    with Peer(tmp_path, users={"user@example.com": "s3cret"}, exclude=["PLAIN"]) as relay:
        relay_setup(env, relay, "s3cret")
        r = env.doctor()
        assert r.returncode == 0, r.stdout
        assert relay.auth == [("user@example.com", "LOGIN", True)]


def test_relay_without_starttls(env):
    with Peer() as plain:
        relay_setup(env, plain, "x")
        r = env.doctor()
        assert r.returncode == 1
        assert "TLS is required, but was not offered" in lines(r.stdout)["network"][1]


def test_relay_missing_credentials(env, tmp_path):
    with Peer(tmp_path, users={"u": "p"}) as relay:
        relay_setup(env, relay, "p")
        (env.tmp / "sasl_passwd").write_text("other.test u:p\n")
        r = env.doctor()
        assert r.returncode == 1
        got = lines(r.stdout)
        assert got["network"][0] == "FAIL"
        assert "has no entry for [127.0.0.1]:%d" % relay.port in got["network"][1]


def test_two_dmarc_records(env):
    env.dns.set("_dmarc.example.com", [("TXT", GOOD_DMARC), ("TXT", "v=DMARC1; p=reject")])
    r = env.doctor(probe=env.probe)
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["dmarc"][0] == "FAIL" and "2 DMARC records" in got["dmarc"][1]


def test_relay_by_name_spf_not_covering_it_is_warn(env, tmp_path):
    # A relay hongyan knows no SPF include for, whose submission address the
    # record does not list: that cannot be decided from here (warn, with advice).
    with Peer(tmp_path, users={"u": "p"}) as relay:
        relay_setup(env, relay, "p")
        env.settings["relayhost"] = "[relay.example.net]:%d" % relay.port
        env.write()
        (env.tmp / "sasl_passwd").write_text("[relay.example.net]:%d u:p\n" % relay.port)
        env.dns.set("relay.example.net", [("A", "127.0.0.1")])
        env.dns.set("example.com", [("MX", (10, "mx.example.com")), ("TXT", GOOD_SPF)])
        r = env.doctor()
        got = lines(r.stdout)
        assert got["spf"][0] == "warn", r.stdout
        assert "evaluates to fail for the relay's address 127.0.0.1" in got["spf"][1], r.stdout
        assert "include: term your relay provider documents" in r.stdout
        assert got["network"][0] == "ok", r.stdout
        assert "relay.example.net[127.0.0.1]:%d: TLS ok, AUTH as u accepted" % relay.port \
            in got["network"][1]
        assert r.returncode == 0, r.stdout


def test_public_address_from_interfaces_or_unknown(env):
    # Without --public-address or doctor_public_address the address comes from
    # the interfaces; test hosts usually have none that is global (then: warn).
    r = env.doctor(probe=env.probe, public=None)
    got = lines(r.stdout)
    head = r.stdout.splitlines()[0]
    if "public address unknown" in head:
        for check in ("ptr",):
            assert got[check][0] == "warn", r.stdout
            assert "public address of this host is unknown" in got[check][1]
        assert got["a"][0] == "warn" and got["spf"][0] == "warn", r.stdout
        assert r.returncode == 0, r.stdout
    else:
        assert "from the host's interfaces" in head, head
        addr = head.split("public address ")[1].split(" ")[0]
        assert not addr.startswith(("127.", "10.", "192.168.", "192.0.2.", "fe80", "fd"))


# ---- TLSA (DANE) ----------------------------------------------------------------


def tlsa_311(cert_path):
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def with_cert(env):
    cert, key = make_cert(env.tmp, "mx.example.com")
    env.settings["smtpd_tls_cert_file"] = str(cert)
    env.settings["smtpd_tls_key_file"] = str(key)
    env.write()
    return cert


def test_tlsa_matching_the_certificate_is_ok(env):
    cert = with_cert(env)
    env.dns.set("_25._tcp.mx.example.com", [("TLSA", (3, 1, 1, tlsa_311(cert)))])
    r = env.doctor(probe=env.probe)
    got = lines(r.stdout)
    assert got["tlsa"][0] == "ok", r.stdout
    assert "TLSA 3 1 1 at _25._tcp.mx.example.com matches the certificate in %s" % cert \
        in got["tlsa"][1]
    assert r.returncode == 0, r.stdout


def test_tlsa_not_matching_the_certificate_fails(env):
    cert = with_cert(env)
    env.dns.set("_25._tcp.mx.example.com", [("TLSA", (3, 1, 1, "ab" * 32)),
                                            ("TLSA", (1, 1, 1, tlsa_311(cert)))])
    r = env.doctor(probe=env.probe)
    got = lines(r.stdout)
    assert r.returncode == 1, r.stdout
    assert got["tlsa"][0] == "FAIL", r.stdout
    # PKIX-EE (1) is not for SMTP (RFC 7672 3.1.3), even when its digest is right.
    assert "2 TLSA record(s) at _25._tcp.mx.example.com (1 usable for SMTP)" in got["tlsa"][1]
    assert published(r.stdout) == ["_25._tcp.mx.example.com. IN TLSA 3 1 1 %s" % tlsa_311(cert)]
    assert "Senders that use DANE defer all mail to mx.example.com" in r.stdout


def test_no_tlsa_is_ok_with_the_record_as_advice(env):
    cert = with_cert(env)
    r = env.doctor(probe=env.probe)
    got = lines(r.stdout)
    assert got["tlsa"][0] == "ok", r.stdout
    assert "no TLSA records at _25._tcp.mx.example.com" in got["tlsa"][1]
    assert "_25._tcp.mx.example.com. IN TLSA 3 1 1 %s" % tlsa_311(cert) in r.stdout
    assert "Publish" not in r.stdout


@pytest.mark.parametrize("provider_spf", [True, False], ids=["derived", "unknown"])
def test_relay_spf_include_is_never_a_placeholder_in_a_record(env, tmp_path, provider_spf):
    # No SPF record yet and a relay hongyan has no table entry for: the
    # include is the relay's registered domain when that domain publishes SPF;
    # otherwise the record to paste has no placeholder and the advice says
    # what to add.
    with Peer(tmp_path, users={"u": "p"}) as relay:
        relay_setup(env, relay, "p")
        env.settings["relayhost"] = "[smtp.provider.test]:%d" % relay.port
        env.write()
        (env.tmp / "sasl_passwd").write_text("[smtp.provider.test]:%d u:p\n" % relay.port)
        env.dns.set("smtp.provider.test", [("A", "127.0.0.1")])
        if provider_spf:
            env.dns.set("provider.test", [("TXT", "v=spf1 ip4:127.0.0.0/8 -all")])
        env.dns.set("example.com", [("MX", (10, "mx.example.com"))])
        r = env.doctor()
        got = lines(r.stdout)
        assert got["spf"][0] == "FAIL", r.stdout
        zone = [line for line in r.stdout.splitlines() if " IN TXT \"v=spf1" in line]
        assert zone, r.stdout
        assert all("<" not in line for line in zone), r.stdout
        if provider_spf:
            assert 'example.com. IN TXT "v=spf1 mx include:provider.test ~all"' in zone[0], r.stdout
        else:
            assert 'example.com. IN TXT "v=spf1 mx ~all"' in zone[0], r.stdout
            assert "include: term that the provider of smtp.provider.test documents" in r.stdout
