"""The keeper: a process of its own uid and group, no network, no_new_privs
and seccomp, that alone reads the TLS key, the DKIM keys and the users file.
smtpd's STARTTLS (checked by OpenSSL clients that verify the
certificate), AUTH (swaks), DKIM signing (verified by dkimpy) and an
authenticated relay go through it; killed, it comes back and they work
again; a malformed request closes only the connection it came on."""
import ctypes
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import dkim
import pytest

from conftest import BIN, wait_for
from smtppeer import Peer
from test_worker_exec import child_of, delivery_of, smtpd_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the keeper's own uid")

SANITIZED = bool(os.environ.get("HONGYAN_SANITIZED"))
PASSWORD = "keeper's pw"


def keeper_of(srv, not_pid=None):
    return child_of(srv, "keeper", not_pid)


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def zone_records(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(\S+)\. IN TXT \( (.*) \)$', line)
        if m:
            out[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return out


@pytest.fixture
def env(server_factory):
    with Peer() as peer:
        srv = server_factory({
            "dkim_domains": "example.com",
            "relayhost": "[127.0.0.1]:%d" % peer.port,
            "smtpd_sasl_failure_delay": "0",
        }, start=False)
        r = srv.cmd("dkim", "keygen", "example.com", "--algorithm", "rsa")
        assert r.returncode == 0, r.stderr
        keys = zone_records(r.stdout)
        r = srv.cmd("user", "add", "alice@example.com", input=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
        srv.start()
        yield {"srv": srv, "peer": peer, "keys": keys}


def starttls(c, srv, tls_max=None):
    """STARTTLS checking the certificate and its name (smtplib checks the name it connected to)."""
    c._host = "mx.example.com"
    c.starttls(context=verify_context(srv, tls_max))


def verify_context(srv, tls_max=None):
    ctx = ssl.create_default_context(cafile=str(srv.data / "tls" / "cert.pem"))
    if tls_max:
        ctx.maximum_version = tls_max
    return ctx


def submit(env, to, tag, tls_max=None):
    """STARTTLS (certificate verified), AUTH, a message from a DKIM domain."""
    srv = env["srv"]
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as c:
        c.ehlo("client.example")
        starttls(c, srv, tls_max)
        version = c.sock.version()
        c.ehlo("client.example")
        c.login("alice@example.com", PASSWORD)
        msg = ("From: Alice <alice@example.com>\r\nTo: <%s>\r\nSubject: %s\r\n"
               "Message-ID: <%s@example.com>\r\n\r\nbody of %s\r\n" % (to, tag, tag, tag))
        c.sendmail("alice@example.com", [to], msg.encode())
    return version


def dkim_ok(env, raw):
    raw = raw if b"\r\n" in raw else raw.replace(b"\n", b"\r\n")
    keys = env["keys"]
    return dkim.verify(raw, dnsfunc=lambda name, timeout=5:
                       keys.get(name.decode().rstrip("."), "").encode() or None)


def delivered(env, tag):
    def find():
        for m in env["srv"].messages("example.com", "u"):
            data = m.read_bytes()
            if ("Subject: %s" % tag).encode() in data:
                return data
        return None
    return wait_for(find, timeout=15)


def relayed(env, tag):
    def find():
        for m in env["peer"].messages:
            if ("Subject: %s" % tag).encode() in m.data:
                return m.data
        return None
    return wait_for(find, timeout=15)


def works(env, tag):
    """TLS 1.3 and 1.2 with a verified certificate, AUTH, DKIM, local and relayed."""
    assert submit(env, "u@example.com", tag + "-local") == "TLSv1.3"
    data = delivered(env, tag + "-local")
    assert data and b"DKIM-Signature:" in data
    assert dkim_ok(env, data)
    assert submit(env, "bob@remote.test", tag + "-relay", ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    data = relayed(env, tag + "-relay")
    assert data and dkim_ok(env, data)


def test_keeper_has_its_own_uid_and_group_and_sandbox(env):
    srv = env["srv"]
    keeper = keeper_of(srv)
    kpw, wpw = pwd.getpwnam("hongyan-keys"), pwd.getpwnam("hongyan")
    ks = status(keeper)
    assert ks["Uid"].split() == [str(kpw.pw_uid)] * 4
    assert ks["Gid"].split() == [str(kpw.pw_gid)] * 4
    assert ks["Groups"].split() == []
    assert ks["NoNewPrivs"] == "1"
    assert ks["Seccomp"] == ("0" if SANITIZED else "2")
    # smtpd and delivery: another uid, and neither gid nor any group of theirs is the keeper's.
    for pid in (smtpd_of(srv), delivery_of(srv)):
        ws = status(pid)
        assert ws["Uid"].split()[0] == str(wpw.pw_uid)
        assert str(kpw.pw_gid) not in ws["Gid"].split() + ws["Groups"].split()
    # smtpd, the network-facing one, holds no supplementary group at all.
    assert status(smtpd_of(srv))["Groups"].split() == []
    assert os.readlink("/proc/%d/exe" % keeper) == os.path.realpath(BIN)
    # No socket but the socketpairs it was given (SOCK_SEQPACKET Unix sockets), one per client.
    socks = [os.readlink("/proc/%d/fd/%s" % (keeper, fd)) for fd in os.listdir("/proc/%d/fd" % keeper)]
    socks = [s[8:-1] for s in socks if s.startswith("socket:[")]
    with open("/proc/net/unix") as f:
        unix = {line.split()[6]: line.split()[4] for line in list(f)[1:]}
    assert len(socks) == 2 and all(unix.get(s) == "0005" for s in socks), (socks, unix)
    for task in os.listdir("/proc/%d/task" % keeper):
        with open("/proc/%d/task/%s/status" % (keeper, task)) as f:
            assert ("Seccomp:\t%s\n" % ("0" if SANITIZED else "2")) in f.read()


@pytest.mark.parametrize("kind", ["smtpd", "delivery"])
def test_child_credentials_cannot_read_the_secrets(env, kind):
    srv = env["srv"]
    ws = status(child_of(srv, kind))
    uid, gid = ws["Uid"].split()[0], ws["Gid"].split()[0]
    groups = ",".join(ws["Groups"].split()) or None
    as_child = ["setpriv", "--reuid=" + uid, "--regid=" + gid]
    as_child += ["--groups=" + groups] if groups else ["--clear-groups"]
    secrets = [srv.data / "tls" / "key.pem", srv.data / "dkim" / "example.com" / "mail.pem",
               srv.data / "users"]
    for path in secrets:
        assert path.exists(), path
        r = subprocess.run(as_child + ["--", "cat", str(path)], capture_output=True, timeout=10)
        assert r.returncode != 0 and b"Permission denied" in r.stderr, (path, r)
    # The certificate is public; the keeper reads what smtpd and delivery cannot.
    r = subprocess.run(as_child + ["--", "cat", str(srv.data / "tls" / "cert.pem")],
                       capture_output=True, timeout=10)
    assert r.returncode == 0 and b"BEGIN CERTIFICATE" in r.stdout
    kpw = pwd.getpwnam("hongyan-keys")
    for path in secrets:
        r = subprocess.run(["setpriv", "--reuid=%d" % kpw.pw_uid, "--regid=%d" % kpw.pw_gid,
                            "--clear-groups", "--", "cat", str(path)], capture_output=True,
                           timeout=10)
        assert r.returncode == 0, (path, r.stderr)


def test_tls_auth_dkim_and_relay_through_the_keeper(env):
    works(env, "first")
    assert "keeper started" in env["srv"].log_text()


def test_users_file_planted_by_smtpd_is_refused(env):
    """data_directory is mail_owner's: smtpd can swap the users file for its own,
    but the keeper reads only root's or its own, and keeps the users it had."""
    srv = env["srv"]
    wpw = pwd.getpwnam("hongyan")
    users = srv.data / "users"
    planted = srv.data / "users.planted"
    h = subprocess.run(["openssl", "passwd", "-6", "mallory pw"], capture_output=True, text=True,
                       check=True).stdout.strip()
    planted.write_text("mallory:%s\n" % h)
    os.chown(planted, wpw.pw_uid, wpw.pw_gid)
    r = subprocess.run(["setpriv", "--reuid=%d" % wpw.pw_uid, "--regid=%d" % wpw.pw_gid,
                        "--clear-groups", "--", "mv", str(planted), str(users)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    time.sleep(1.1)  # the keeper looks at the file at most once a second
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as c:
        c.ehlo("client.example")
        starttls(c, srv)
        c.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("mallory", "mallory pw")
    assert wait_for(lambda: "owned by another user than root or the keeper" in srv.log_text(),
                    timeout=5), srv.log_text()
    assert submit(env, "u@example.com", "after-plant")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_auth(env):
    srv = env["srv"]
    for password, want in ((PASSWORD, "235 2.7.0"), ("wrong", "535 5.7.8")):
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.submission_port,
                            "--from", "alice@example.com", "--to", "u@example.com", "--tls",
                            "--auth", "PLAIN", "--auth-user", "alice@example.com",
                            "--auth-password", password, "--helo", "client.example"],
                           capture_output=True, text=True, timeout=60)
        assert want in r.stdout, r.stdout


def test_rsa_certificate_pkcs1_and_pss(server_factory, tmp_path):
    """An RSA key: TLS 1.2 with PKCS#1 v1.5 and with PSS, TLS 1.3 (PSS), all verified by openssl."""
    cert, key = tmp_path / "rsa-cert.pem", tmp_path / "rsa-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.example.com", "-addext", "subjectAltName=DNS:mx.example.com",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    kpw = pwd.getpwnam("hongyan-keys")
    os.chown(key, kpw.pw_uid, kpw.pw_gid)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    os.chmod(tmp_path, 0o755)
    srv = server_factory({"smtpd_tls_cert_file": str(cert), "smtpd_tls_key_file": str(key)})
    for args in (["-tls1_2", "-sigalgs", "RSA+SHA256"], ["-tls1_2", "-sigalgs", "RSA-PSS+SHA256"],
                 ["-tls1_3"]):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.smtpd_port,
                            "-starttls", "smtp", "-CAfile", str(cert), "-verify_return_error",
                            "-verify_hostname", "mx.example.com"] + args,
                           input="QUIT\n", capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.stdout, (args, r.stdout,
                                                                                 r.stderr)
        if "RSA-PSS" in args[-1] or args == ["-tls1_3"]:
            assert "RSA-PSS" in r.stdout, r.stdout
        else:
            assert "Peer signature type: RSA\n" in r.stdout, r.stdout


def test_key_that_does_not_match_the_certificate_is_refused(server_factory, tmp_path):
    """smtpd cannot read the key, so it asks the keeper for one signature
    at load and checks it against the certificate, as it checked the pair."""
    made = []
    for name in ("a", "b"):
        cert, key = tmp_path / ("%s-cert.pem" % name), tmp_path / ("%s-key.pem" % name)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=mx.example.com", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        kpw = pwd.getpwnam("hongyan-keys")
        os.chown(key, kpw.pw_uid, kpw.pw_gid)
        os.chmod(cert, 0o644)
        made.append((cert, key))
    os.chmod(tmp_path, 0o755)
    srv = server_factory({"smtpd_tls_cert_file": str(made[0][0]),
                          "smtpd_tls_key_file": str(made[1][1])}, start=False)
    srv.start(wait=False)
    assert wait_for(lambda: "does not match the certificate in %s" % made[0][0]
                    in srv.log_text(), timeout=20), srv.log_text()
    # smtpd, which serves TLS, never gets ready; delivery, which does not, may.
    assert not re.search(r"/smtpd\[\d+\]: ready:", srv.log_text()), srv.log_text()


def test_killed_keeper_comes_back(env):
    srv = env["srv"]
    works(env, "before")
    old, smtpd, delivery = keeper_of(srv), smtpd_of(srv), delivery_of(srv)
    os.kill(old, signal.SIGKILL)
    new = keeper_of(srv, not_pid=old)
    assert wait_for(lambda: "keeper pid %d killed by signal 9; restarting" % old in srv.log_text(),
                    timeout=5)
    started = time.monotonic()
    works(env, "after")
    assert time.monotonic() - started < 20
    # smtpd and delivery went on: only the keeper was restarted.
    assert (smtpd_of(srv), delivery_of(srv)) == (smtpd, delivery)
    assert keeper_of(srv) == new


def test_request_queued_while_the_keeper_dies(env):
    """AUTH sent while the keeper is stopped, then the keeper killed: the
    request waits in the socketpair (the supervisor holds the keeper's end)
    and the next keeper answers it, or smtpd answers 454; either way
    smtpd does not crash and serves on."""
    srv = env["srv"]
    keeper, smtpd = keeper_of(srv), smtpd_of(srv)
    c = smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30)
    c.ehlo("client.example")
    starttls(c, srv)
    c.ehlo("client.example")
    os.kill(keeper, signal.SIGSTOP)
    c.putcmd("AUTH", "PLAIN " + __import__("base64").b64encode(
        b"\0alice@example.com\0" + PASSWORD.encode()).decode())
    time.sleep(0.5)
    os.kill(keeper, signal.SIGKILL)
    code, text = c.getreply()
    assert code in (235, 454), (code, text)
    c.close()
    keeper_of(srv, not_pid=keeper)
    works(env, "queued")
    assert smtpd_of(srv) == smtpd


def build_option(name):
    import json
    import pathlib
    info = pathlib.Path(BIN).resolve().parent / "meson-info" / "intro-buildoptions.json"
    try:
        return next((o["value"] for o in json.loads(info.read_text()) if o["name"] == name), None)
    except (OSError, ValueError):
        return None


@pytest.mark.skipif(build_option("test_hooks") is not True, reason="needs -Dtest_hooks=true")
def test_smtpd_whose_connection_is_shut_is_replaced(server_factory, tmp_path):
    """An smtpd that sends the keeper garbage (test hook) loses its connection,
    stops, and the supervisor starts a fresh smtpd and keeper that work."""
    flag = tmp_path / "garbage-once"
    os.environ["HONGYAN_TEST_KEEPER_GARBAGE"] = str(flag)
    try:
        srv = server_factory(start=False)
        r = srv.cmd("user", "add", "alice@example.com", input=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
        flag.write_text("")
        os.chmod(tmp_path, 0o777)  # smtpd (mail_owner) removes the flag
        srv.start(wait=False)
        assert wait_for(lambda: "malformed request" in srv.log_text(), timeout=15), \
            srv.log_text()
        # That smtpd stops (or, its TLS key unusable, does not start) and is replaced.
        assert wait_for(lambda: "ready:" in srv.log_text().partition("; restarting")[2],
                        timeout=30), srv.log_text()
        assert not flag.exists()
        with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as c:
            c.ehlo("client.example")
            starttls(c, srv)
            c.ehlo("client.example")
            c.login("alice@example.com", PASSWORD)
    finally:
        del os.environ["HONGYAN_TEST_KEEPER_GARBAGE"]
    log = srv.log_text()
    assert "keeper connection closed" in log and "restarting" in log, log


PR_SET_PDEATHSIG = 1


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def request(kind, *fields, rid=1):
    out = struct.pack("=IHH", rid, kind, 0)
    for f in fields:
        out += bytes([f]) if isinstance(f, int) else struct.pack("=H", len(f)) + f
    return out


def test_malformed_request_closes_only_that_connection(server_factory, tmp_path):
    srv = server_factory(start=False)
    r = srv.cmd("user", "add", "bob", input="bob's pw\n")
    assert r.returncode == 0, r.stderr
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(3)]
    caps = [(1 << 1) | (1 << 2) | (1 << 3) | (1 << 4), 1 << 4, 1 << 1]  # all, PASSWORD, TLS_SIGN
    args = [BIN, "keeper", "--parent", str(os.getpid()), "--config", str(srv.cfg)]
    for (ours, theirs), cap in zip(pairs, caps):
        args += ["--client", "%d,%d" % (theirs.fileno(), cap)]
    log = open(tmp_path / "keeper.log", "wb")
    proc = subprocess.Popen(args, pass_fds=[t.fileno() for _, t in pairs],
                            preexec_fn=_die_with_parent, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _, theirs in pairs:
            theirs.close()
        a, b, c = (ours for ours, _ in pairs)
        for s in (a, b, c):
            s.settimeout(10)
        # A valid check on b first: the keeper serves.
        b.send(request(4, b"bob", b"bob's pw", rid=7))
        assert struct.unpack("=IHH", b.recv(65536)[:8]) == (7, 4, 0)
        # Garbage on a: that connection is shut, the keeper lives on.
        a.send(b"\x00\x01garbage that is no request")
        assert a.recv(65536) == b""
        # A request type c may not make: c is shut too.
        c.send(request(4, b"bob", b"bob's pw", rid=8))
        assert c.recv(65536) == b""
        # An overlong field on nobody's behalf changes nothing for b.
        b.send(request(4, b"bob", b"wrong", rid=9))
        assert struct.unpack("=IHH", b.recv(65536)[:8]) == (9, 4, 1)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    text = (tmp_path / "keeper.log").read_text()
    assert "malformed request" in text and "may not make" in text, text
