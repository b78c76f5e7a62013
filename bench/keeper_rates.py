#!/usr/bin/python3
"""TLS handshakes/s and AUTH checks/s of one hongyan binary, for comparing
builds (the keeper moved the private key and the password hashes to another
process: docs/security.md gives the figures).

    sudo bench/keeper_rates.py BIN [SECONDS]

TLS: `openssl s_time -new` (full handshakes, one at a time) against the
smtps listener with the self-signed ECDSA certificate. AUTH: 4 client
threads, each a new plain connection with EHLO, AUTH PLAIN (a yescrypt
user; smtpd_tls_auth_only = no for this loopback bench only) and QUIT.
Bounded by SECONDS (default 8) per figure. Then the keeper alone: 2000
TLS_SIGN requests (ECDSA P-256 over a SHA-256 digest, what a TLS 1.3
handshake asks) one after the other over a socketpair to a `hongyan keeper`
started here, against the same signature made in this process.
"""
import base64
import os
import pathlib
import re
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "integration"))
os.environ.setdefault("HONGYAN_BIN", os.path.abspath(sys.argv[1]))
from conftest import Server  # noqa: E402


def tls_rate(srv, seconds):
    r = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % srv.smtps_port,
                        "-new", "-time", str(seconds)], capture_output=True, text=True,
                       timeout=seconds + 30)
    m = re.search(r"(\d+) connections in ([\d.]+) real seconds", r.stdout)
    return int(m.group(1)) / float(m.group(2)) if m else 0.0


def auth_rate(srv, seconds, threads=4):
    token = base64.b64encode(b"\0bench\0bench password").decode()
    done, stop = [0], time.monotonic() + seconds
    lock = threading.Lock()

    def client():
        while time.monotonic() < stop:
            with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30) as c:
                c.ehlo("bench.example")
                code, _ = c.docmd("AUTH", "PLAIN " + token)
                assert code == 235, code
            with lock:
                done[0] += 1
    started = time.monotonic()
    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / (time.monotonic() - started)


def _as_keeper():
    """As the supervisor starts it: keeper_user, then the death signal."""
    import ctypes
    import pwd
    pw = pwd.getpwnam("hongyan-keys")
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    ctypes.CDLL(None).prctl(1, 15, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGTERM


def sign_latency(srv, rounds=2000):
    """Mean µs per keeper TLS_SIGN round trip, and per local ECDSA signature."""
    import hashlib
    import socket
    import struct
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([os.environ["HONGYAN_BIN"], "keeper", "--parent", str(os.getpid()),
                             "--config", str(srv.cfg), "--client", "%d,2" % theirs.fileno()],
                            pass_fds=[theirs.fileno()], preexec_fn=_as_keeper)
    theirs.close()
    try:
        for _ in range(100):
            if (srv.data / "tls" / "key.pem").exists():
                break
            time.sleep(0.1)
        time.sleep(0.3)
        from cryptography import x509
        cert = x509.load_pem_x509_certificate((srv.data / "tls" / "cert.pem").read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        keyid = hashlib.sha256(spki).digest()
        digest = hashlib.sha256(b"handshake transcript").digest()
        req = lambda i: (struct.pack("=IHH", i, 1, 0) + bytes([3]) + struct.pack("=H", 32) +
                         keyid + struct.pack("=H", 32) + digest)
        ours.settimeout(10)
        started = time.perf_counter()
        for i in range(rounds):
            ours.send(req(i))
            reply = ours.recv(65536)
            assert struct.unpack("=IHH", reply[:8]) == (i, 1, 0), reply[:8]
        remote = (time.perf_counter() - started) / rounds * 1e6
        key = serialization.load_pem_private_key((srv.data / "tls" / "key.pem").read_bytes(),
                                                 None)
        started = time.perf_counter()
        for i in range(rounds):
            key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        local = (time.perf_counter() - started) / rounds * 1e6
        return remote, local
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        srv = Server(pathlib.Path(tmp) / "srv", {"smtpd_tls_auth_only": "no"})
        srv.settings["smtps_listen"] = "127.0.0.1:%d" % srv.smtps_port
        srv.write_config()
        r = srv.cmd("user", "add", "bench", input="bench password\n")
        assert r.returncode == 0, r.stderr
        srv.start()
        try:
            tls, auth = tls_rate(srv, seconds), auth_rate(srv, seconds)
        finally:
            srv.stop()
        print("%s: TLS handshakes/s %.0f, AUTH checks/s %.1f" % (sys.argv[1], tls, auth))
        r = subprocess.run([os.environ["HONGYAN_BIN"], "keeper"], capture_output=True)
        if b"supervisor only" in r.stderr:  # a build with the keeper
            remote, local = sign_latency(srv)
            print("keeper TLS_SIGN round trip %.0f us; the same ECDSA signature here %.0f us"
                  % (remote, local))


if __name__ == "__main__":
    main()
