"""Runs opendkim-testmsg against test keys, for tests/integration/test_dkim.py.

opendkim-testmsg has no resolver option: libopendkim asks glibc's resolver,
which reads /etc/resolv.conf and always uses port 53. So this script is run
as `unshare --net --mount python3 opendkim_netns.py KEYS.json MESSAGE`: in
its own network namespace (a private loopback, so port 53 there collides
with nothing) it serves the TXT records of KEYS.json ({name: txt}) on
127.0.0.1:53 with dnslib, bind-mounts a resolv.conf naming that server over
/etc/resolv.conf (private mount namespace), then verifies MESSAGE with
opendkim-testmsg and exits with its status (0: a signature verified).
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class KeyResolver(BaseResolver):
    def __init__(self, keys):
        self.keys = {k.rstrip(".").lower(): v for k, v in keys.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        txt = self.keys.get(name)
        if txt is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            data = txt.encode()
            chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


@contextlib.contextmanager
def key_dns(keys):
    """Inside a fresh network and mount namespace: serves keys ({name: txt})
    on 127.0.0.1:53 and points /etc/resolv.conf at it for the duration.
    bench/dkim_netns.py uses it too."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [DNSServer(KeyResolver(keys), port=53, address="127.0.0.1", tcp=tcp, logger=quiet)
               for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    with tempfile.NamedTemporaryFile("w", suffix=".resolv.conf", delete=False) as f:
        f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    try:
        subprocess.run(["mount", "--bind", f.name, "/etc/resolv.conf"], check=True)
        yield
    finally:
        os.unlink(f.name)
        for s in servers:
            s.stop()


def main():
    with key_dns(json.load(open(sys.argv[1]))):
        with open(sys.argv[2], "rb") as msg:
            r = subprocess.run(["opendkim-testmsg"], stdin=msg, capture_output=True, timeout=30)
        sys.stdout.write(r.stdout.decode(errors="replace"))
        sys.stderr.write(r.stderr.decode(errors="replace"))
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
