#!/usr/bin/python3
"""TLS handshakes/s and AUTH checks/s of one hongyan binary, for comparing
builds (the keeper moved the private key and the password hashes to another
process: docs/security.md gives the figures).

    sudo bench/keeper_rates.py BIN [SECONDS]

TLS: `openssl s_time -new` (full handshakes, one at a time) against the
smtps listener with the self-signed ECDSA certificate. AUTH: 4 client
threads, each a new plain connection with EHLO, AUTH PLAIN (a yescrypt
user; smtpd_tls_auth_only = no for this loopback bench only) and QUIT.
Bounded by SECONDS (default 8) per figure.
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


if __name__ == "__main__":
    main()
