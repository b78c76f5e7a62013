"""Connects to hongyan from several IPv6 source addresses, for
tests/integration/test_security_limits.py.

Loopback has one IPv6 address (::1), so this script is run as
`unshare --net python3 netns_v6_clients.py BIN MAIN.CF PORT SRC...`: in its
own network namespace (a private loopback, nothing reaches the host's
interfaces) it gives lo the documentation addresses SRC... (2001:db8::/32,
RFC 3849) and [2001:db8::1] for the server, starts `BIN -c MAIN.CF serve`
(which must listen on [2001:db8::1]:PORT), opens one connection from each
SRC in order, keeping them all open, and prints one JSON list: the first
reply line each connection got. It stops the server by its pid.
"""
import json
import signal
import socket
import subprocess
import sys
import time

SERVER_ADDR = "2001:db8::1"


def main():
    binary, cfg, port, sources = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for addr in [SERVER_ADDR] + sources:
        subprocess.run(["ip", "-6", "addr", "add", addr + "/128", "dev", "lo", "nodad"],
                       check=True)
    server = subprocess.Popen([binary, "-c", cfg, "serve"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    conns, replies = [], []
    try:
        deadline = time.monotonic() + 15
        while True:  # wait for the listener (bounded)
            try:
                socket.create_connection((SERVER_ADDR, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not listen")
                time.sleep(0.05)
        time.sleep(0.3)  # the probe's session ends before the counted ones start
        for src in sources:
            s = socket.create_connection((SERVER_ADDR, port), timeout=10,
                                         source_address=(src, 0))
            conns.append(s)
            line = b""
            while not line.endswith(b"\n") and len(line) < 512:
                chunk = s.recv(512)
                if not chunk:
                    break
                line += chunk
            replies.append(line.decode(errors="replace").strip())
    finally:
        for s in conns:
            s.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    print(json.dumps(replies))


if __name__ == "__main__":
    main()
