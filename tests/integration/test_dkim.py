"""DKIM interop: what hongyan signs verifies with dkimpy and opendkim; what
dkimpy signs verifies with `hongyan dkim verify` (keys from a dnslib server
reached through dns_resolver); tampering fails both ways; `dkim keygen`
writes a key whose published record matches it.

opendkim-testmsg cannot be given a resolver or a port (libopendkim uses
glibc's resolver, which reads /etc/resolv.conf, port 53): it runs through
opendkim_netns.py in a private network and mount namespace (`unshare`),
where a dnslib server on that namespace's own 127.0.0.1:53 serves the keys
and a bind-mounted resolv.conf points at it. Those checks need root (or
unshare rights) and are skipped, saying so, when unshare is refused.
"""
import base64
import json
import os
import pathlib
import pwd
import re
import subprocess

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import BIN, CONFORMANCE, run
from dnsserver import DNSServer

HERE = pathlib.Path(__file__).resolve().parent
ME = pwd.getpwuid(os.geteuid()).pw_name

DOMAINS = {
    "rsa.example.com": ["--algorithm", "rsa"],
    "ed.example.com": ["--algorithm", "ed25519"],
    "both.example.com": [],  # one key per dkim_algorithm: rsa and ed25519
}

MESSAGE = (
    "Received: from a.example.net by b.example.net; Sat, 28 Nov 2026 09:00:00 +0000\r\n"
    "From: Alice Example <alice@{domain}>\r\n"
    "To: Bob <bob@example.net>,\r\n"
    "\tCarol <carol@example.org>\r\n"
    "Subject:  Lunch   plans \t\r\n"
    "Date: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
    "Message-ID: <lunch.1@{domain}>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hi Bob,  \r\n"
    "\r\n"
    "\tshall we meet at noon?   Tabs\tand  spaces.\r\n"
    "-- \r\n"
    "Alice\r\n"
    "\r\n"
    "\r\n"
)


def parse_zone_lines(text):
    """{name: record} from `dkim keygen` output lines."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(\S+)\. IN TXT \( (.*) \)$', line)
        assert m, line
        strings = re.findall(r'"([^"]*)"', m.group(2))
        assert all(len(s) <= 255 for s in strings), line
        out[m.group(1)] = "".join(strings)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dkim")
    keys = {}
    cfg = tmp / "main.cf"
    settings = {
        "data_directory": str(tmp / "data"),
        "mydomain": "example.com",
        "myhostname": "mx.example.com",
        "mail_owner": ME,
        "dkim_domains": " ".join(DOMAINS),
        "dkim_algorithm": "rsa, ed25519",
    }

    def write():
        cfg.write_text("".join("%s = %s\n" % kv for kv in settings.items()))

    write()
    for domain, args in DOMAINS.items():
        r = run(["-c", str(cfg), "dkim", "keygen", domain] + args)
        assert r.returncode == 0, r.stderr
        keys.update(parse_zone_lines(r.stdout))
    zone = {name: [("TXT", txt)] for name, txt in keys.items()}
    zone["broken._domainkey.rsa.example.com"] = [("RCODE", "SERVFAIL")]
    with DNSServer(zone) as dns:
        settings["dns_resolver"] = dns.address
        write()
        yield {"cfg": cfg, "tmp": tmp, "keys": keys, "dns": dns,
               "keydir": tmp / "data" / "dkim"}


def hy(setup, *args, input=None):
    return run(["-c", str(setup["cfg"])] + list(args), input=input)


def dnsfunc_for(keys):
    def dnsfunc(name, timeout=5):
        return keys.get(name.decode().rstrip(".")).encode()
    return dnsfunc


def split_signatures(msg):
    """(list of DKIM-Signature fields, rest of the message), bytes."""
    sigs, rest = [], msg
    while rest.lower().startswith(b"dkim-signature:"):
        end = re.search(rb"\r?\n(?![ \t])", rest).end()
        sigs.append(rest[:end])
        rest = rest[end:]
    return sigs, rest


def hongyan_verify(setup, msg, *extra):
    r = hy(setup, "dkim", "verify", *extra, input=msg)
    return r.returncode, r.stdout.decode().splitlines(), r.stderr.decode()


def dkimpy_verify_each(setup, msg):
    n = len(split_signatures(msg)[0])
    d = dkim.DKIM(msg, minkey=1024)
    out = []
    for i in range(n):
        try:
            out.append(d.verify(idx=i, dnsfunc=dnsfunc_for(setup["keys"])))
        except dkim.ValidationError:  # dkimpy raises on a body hash mismatch
            out.append(False)
    return out


def opendkim_verify(setup, msg):
    """opendkim-testmsg's exit status for msg (0: verified), or None if it cannot run here."""
    tmp = setup["tmp"]
    (tmp / "odkeys.json").write_text(json.dumps(setup["keys"]))
    (tmp / "odmsg.eml").write_bytes(msg)
    try:
        r = subprocess.run(["unshare", "--net", "--mount", "/usr/bin/python3",
                            str(HERE / "opendkim_netns.py"), str(tmp / "odkeys.json"),
                            str(tmp / "odmsg.eml")], capture_output=True, timeout=60)
    except FileNotFoundError:
        return None
    if b"unshare failed" in r.stderr or b"Operation not permitted" in r.stderr:
        return None
    return r.returncode


def sign(setup, domain, canon, lf=False):
    msg = MESSAGE.format(domain=domain)
    if lf:
        msg = msg.replace("\r\n", "\n")
    r = hy(setup, "dkim", "sign", "--canonicalization", canon, input=msg.encode())
    assert r.returncode == 0, r.stderr
    return r.stdout


CANONS = ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"]


@pytest.mark.parametrize("domain", list(DOMAINS))
@pytest.mark.parametrize("canon", CANONS)
def test_hongyan_signs_dkimpy_and_hongyan_verify(setup, domain, canon):
    signed = sign(setup, domain, canon)
    sigs, body = split_signatures(signed)
    assert len(sigs) == (2 if domain.startswith("both") else 1)
    for s in sigs:
        assert ("c=%s;" % canon).encode() in s
        assert ("d=%s;" % domain).encode() in s
        assert all(len(line) <= 78 for line in s.split(b"\r\n"))
        assert b" l=" not in s and b";l=" not in s
    assert dkimpy_verify_each(setup, signed) == [True] * len(sigs)
    rc, lines, err = hongyan_verify(setup, signed)
    assert rc == 0, (lines, err)
    assert all(line.startswith("pass d=%s " % domain) for line in lines), lines
    assert len(lines) == len(sigs)
    # Tampered header, tampered body: every signature fails in both verifiers.
    for old, new in [(b"Lunch", b"Dinner"), (b"at noon", b"at one")]:
        bad = signed.replace(old, new, 1)
        assert dkimpy_verify_each(setup, bad) == [False] * len(sigs)
        rc, lines, _ = hongyan_verify(setup, bad)
        assert rc == 1
        assert all(line.startswith("fail d=%s " % domain) for line in lines), lines
    # A second From: added on top breaks the over-signed From.
    rc, lines, _ = hongyan_verify(setup, b"From: mallory@evil.test\r\n" + signed)
    assert rc == 1 and all(line.startswith("fail") for line in lines)


def test_lf_input_is_signed_as_crlf(setup):
    signed = sign(setup, "both.example.com", "simple/simple", lf=True)
    assert b"\r\n" not in signed  # given back as it came, LF
    assert dkimpy_verify_each(setup, signed.replace(b"\n", b"\r\n")) == [True, True]
    rc, lines, _ = hongyan_verify(setup, signed)
    assert rc == 0 and len(lines) == 2


@pytest.mark.parametrize("domain", list(DOMAINS))
@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple"])
def test_opendkim_verifies_what_hongyan_signs(setup, domain, canon):
    signed = sign(setup, domain, canon)
    sigs, body = split_signatures(signed)
    for s in sigs:  # each signature on its own, so that one cannot hide the other
        rc = opendkim_verify(setup, s + body)
        if rc is None:
            pytest.skip("unshare not permitted here: opendkim-testmsg needs a private resolv.conf")
        assert rc == 0, s
        assert opendkim_verify(setup, s + body.replace(b"noon", b"nine")) != 0


def private_key(setup, domain, selector):
    pem = (setup["keydir"] / domain / (selector + ".pem")).read_bytes()
    return pem, serialization.load_pem_private_key(pem, password=None)


@pytest.mark.parametrize("alg,domain,selector", [
    ("rsa-sha256", "rsa.example.com", "mail"),
    ("ed25519-sha256", "ed.example.com", "mail"),
    ("ed25519-sha256", "both.example.com", "mail-ed25519"),
])
@pytest.mark.parametrize("canon", [(b"relaxed", b"relaxed"), (b"simple", b"simple"),
                                   (b"relaxed", b"simple")])
def test_dkimpy_signs_hongyan_verifies(setup, alg, domain, selector, canon):
    pem, key = private_key(setup, domain, selector)
    if alg.startswith("ed25519"):
        priv = base64.b64encode(key.private_bytes(serialization.Encoding.Raw,
                                                  serialization.PrivateFormat.Raw,
                                                  serialization.NoEncryption()))
    else:
        priv = pem
    msg = MESSAGE.format(domain=domain).encode()
    sig = dkim.sign(msg, selector.encode(), domain.encode(), priv, canonicalize=canon,
                    signature_algorithm=alg.encode(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    rc, lines, err = hongyan_verify(setup, sig + msg)
    assert rc == 0, (lines, err)
    assert lines == ["pass d=%s s=%s a=%s" % (domain, selector, alg)]
    for old, new in [(b"Lunch", b"Dinner"), (b"Tabs", b"Tables")]:
        rc, lines, _ = hongyan_verify(setup, sig + msg.replace(old, new, 1))
        assert rc == 1
        assert lines[0].startswith("fail d=%s" % domain), lines


def test_body_length_is_honoured_and_reported(setup):
    pem, _ = private_key(setup, "rsa.example.com", "mail")
    msg = MESSAGE.format(domain="rsa.example.com").encode()
    sig = dkim.sign(msg, b"mail", b"rsa.example.com", pem, length=True)
    rc, lines, _ = hongyan_verify(setup, sig + msg + b"appended\r\n")
    assert rc == 0
    assert lines[0].startswith("pass d=rsa.example.com") and "l=" in lines[0], lines


def test_unsigned_missing_key_and_dns_failure(setup):
    msg = MESSAGE.format(domain="rsa.example.com").encode()
    rc, lines, _ = hongyan_verify(setup, msg)
    assert (rc, lines) == (1, ["none"])
    pem, _ = private_key(setup, "rsa.example.com", "mail")
    for selector, word in [(b"gone", "permerror"), (b"broken", "temperror")]:
        sig = dkim.sign(msg, selector, b"rsa.example.com", pem)
        rc, lines, _ = hongyan_verify(setup, sig + msg)
        assert rc == 1
        assert lines[0].startswith("%s d=rsa.example.com s=%s" % (word, selector.decode())), lines
    assert ("gone._domainkey.rsa.example.com", "TXT") in setup["dns"].queries


def test_sign_refuses_other_domains(setup):
    r = hy(setup, "dkim", "sign", input=MESSAGE.format(domain="elsewhere.test").encode())
    assert r.returncode == 1
    assert b"elsewhere.test" in r.stderr and r.stdout == b""


def test_keygen_record_matches_key(setup):
    for name, record in setup["keys"].items():
        selector, domain = name.split("._domainkey.")
        tags = dkim.util.parse_tag_value(record.encode())
        assert tags[b"v"] == b"DKIM1"
        pem, key = private_key(setup, domain, selector)
        path = setup["keydir"] / domain / (selector + ".pem")
        assert (path.stat().st_mode & 0o777) == 0o600
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
        pub = key.public_key()
        if tags[b"k"] == b"ed25519":
            want = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            assert tags[b"k"] == b"rsa" and key.key_size == 2048
            want = pub.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        assert base64.b64decode(tags[b"p"]) == want
    # both.example.com got one key per dkim_algorithm.
    assert {"mail._domainkey.both.example.com",
            "mail-ed25519._domainkey.both.example.com"} <= set(setup["keys"])


def test_keygen_refuses_overwrite_and_checks_owner(setup, tmp_path):
    path = setup["keydir"] / "rsa.example.com" / "mail.pem"
    before = path.read_bytes()
    r = hy(setup, "dkim", "keygen", "rsa.example.com", "--algorithm", "rsa")
    assert r.returncode != 0 and "--force" in r.stderr
    assert path.read_bytes() == before
    cfg = tmp_path / "main.cf"
    cfg.write_text("data_directory = %s\nmail_owner = %s\n" % (tmp_path / "d", ME))
    r = run(["-c", str(cfg), "dkim", "keygen", "new.example.com", "--selector", "s1",
             "--algorithm", "rsa", "--bits", "1024"])
    assert r.returncode == 0, r.stderr
    first = (tmp_path / "d" / "dkim" / "new.example.com" / "s1.pem").read_bytes()
    r = run(["-c", str(cfg), "dkim", "keygen", "new.example.com", "--selector", "s1",
             "--algorithm", "rsa", "--force"])
    assert r.returncode == 0
    assert (tmp_path / "d" / "dkim" / "new.example.com" / "s1.pem").read_bytes() != first
    r = run(["-c", str(cfg), "dkim", "keygen", "../etc"])
    assert r.returncode == 64
    if os.geteuid() == 0:
        cfg.write_text("data_directory = %s\nkeeper_user = no-such-user-hy\n" % (tmp_path / "e"))
        r = run(["-c", str(cfg), "dkim", "keygen", "new.example.com"])
        assert r.returncode == 67 and "no-such-user-hy" in r.stderr
        assert not (tmp_path / "e" / "dkim" / "new.example.com").exists()


def test_now_option_makes_expiry_reproducible(setup):
    base = CONFORMANCE / "dkim" / "mail-auth"
    msg = (base / "005.eml").read_bytes()
    keyfile = str(base / "005.dns.txt")
    rc, lines, _ = hongyan_verify(setup, msg, "--now", "1667843664", "--key-file", keyfile)
    assert rc == 0 and lines[-1].startswith("pass d=topicbox.com")
    rc, lines, _ = hongyan_verify(setup, msg, "--key-file", keyfile)
    assert rc == 1 and lines[-1].startswith("permerror d=topicbox.com") and "expired" in lines[-1]
