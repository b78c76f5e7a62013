"""A small authoritative DNS server for tests, on dnslib, in a thread.

It serves a zone given as a Python dict or as zone-file text on a random
loopback port, over UDP and TCP (same port number), so hongyan reaches it
through the `dns_resolver` key. Failures are part of the zone: a name can
be made to time out (no answer at all) or to answer with a fixed RCODE.

    from dnsserver import DNSServer

    zone = {
        "example.com": [
            ("TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
            ("MX", (10, "mx.example.com")),
            ("A", "192.0.2.1"),
        ],
        "mx.example.com": [("A", "192.0.2.25"), ("AAAA", "2001:db8::25")],
        "slow.example.com": ["TIMEOUT"],             # every query: no answer
        "broken.example.com": [("RCODE", "SERVFAIL")],  # or a number: 2
    }
    with DNSServer(zone) as dns:
        server = server_factory(extra={"dns_resolver": dns.address})
        ...
        assert ("example.com", "TXT") in dns.queries

Record forms (the type name is case-insensitive; a one-key dict such as
{"TXT": "v=spf1 -all"} works as well as a tuple, as in the openspf YAML):

    A, AAAA            "192.0.2.1"
    TXT, SPF           "text" (split into 255-octet strings) or a list of
                       strings: the character-strings of ONE record
    MX                 (preference, "host") or "10 host"
    PTR, CNAME, NS     "target.example.com"
    TLSA               (usage, selector, mtype, "hex") or "3 1 1 HEX"
    SOA, SRV, ...      zone-file RDATA text: "ns. host. 1 7200 900 1209600 86400"
    TIMEOUT            "TIMEOUT" or ("TIMEOUT", True): queries for a type the
                       name has no records of go unanswered (a type it has
                       records of is still answered, as the openspf suite wants)
    RCODE              ("RCODE", 2) or ("RCODE", "SERVFAIL"): likewise, but
                       answered with that RCODE

Zone-file text is parsed by dnslib (`$ORIGIN`, `$TTL`, relative names):
DNSServer(zone_text="example.com. 300 IN TXT \"v=spf1 -all\"\n").

Answers: records of the asked type (AA set); a CNAME is followed within the
zone; a name with no records of that type but that exists (itself or below
it) gets NODATA, any other name NXDOMAIN, both with a SOA in the authority
section. `*.example.com` wildcards match names with no records of their
own (RFC 4592, simplified). UDP answers over 512 octets (or the EDNS size)
are truncated, so clients retry over TCP.

The server can be changed while running (`dns.set(name, records)`,
`dns.remove(name)`); `dns.queries` lists (name, type) pairs asked, lower
case, without the trailing dot.

Standalone: `python3 dnsserver.py ZONEFILE` serves a zone file (or, for a
name ending in .json, the dict form with [type, value] lists) and prints
its address ("127.0.0.1:PORT") on the first line; SIGTERM stops it.
"""
import socket
import socketserver
import struct
import threading

from dnslib import (CNAME, DNSLabel, DNSRecord, MX, NS, PTR, QTYPE, RCODE, RR, SOA,
                    TXT, A, AAAA, RD)

__all__ = ["DNSServer"]


class _Raw(RD):
    """RDATA as bytes, for types dnslib does not know (SPF is TXT-shaped)."""

    def pack(self, buffer):
        buffer.append(self.data)


def _key(name):
    """A name as the zone stores it: a tuple of lower-cased label bytes.
    Names are not IDNA-encoded, so test zones may hold odd labels (spaces,
    '%', 8-bit bytes) exactly as a resolver would send them."""
    if isinstance(name, DNSLabel):
        labels = name.label
    else:
        if isinstance(name, str):
            name = name.encode("utf-8", "surrogateescape")
        name = bytes(name).rstrip(b".")
        labels = tuple(name.split(b".")) if name else ()
    return tuple(bytes(l).lower() for l in labels)


def _text(key):
    return b".".join(key).decode("utf-8", "backslashreplace")


def _txt_strings(value):
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogateescape")
        value = bytes(value)
        parts = [value[i:i + 255] for i in range(0, len(value), 255)] or [b""]
    out = []
    for p in parts:
        b = p.encode("utf-8", "surrogateescape") if isinstance(p, str) else bytes(p)
        if len(b) <= 255:
            out.append(b)
        else:  # longer than one character-string can hold: split it
            out.extend(b[i:i + 255] for i in range(0, len(b), 255))
    return out


def _rcode(value):
    if isinstance(value, int):
        return value
    return getattr(RCODE, str(value).upper())


class DNSServer:
    """See the module docstring. Use as a context manager or start()/stop()."""

    def __init__(self, zone=None, zone_text=None, host="127.0.0.1", ttl=300):
        self.host = host
        self.ttl = ttl
        self.lock = threading.Lock()
        self.records = {}      # name key (see _key) -> list of (qtype number, RD)
        self.timeout = set()   # names whose unknown types go unanswered
        self.rcodes = {}       # name -> rcode for unknown types
        self.queries = []
        self.port = None
        self._servers = []
        self._threads = []
        for name, recs in (zone or {}).items():
            self.set(name, recs)
        if zone_text:
            for rr in RR.fromZone(zone_text):
                with self.lock:
                    self.records.setdefault(_key(rr.rname), []).append((rr.rtype, rr.rdata))

    # ---- zone content -------------------------------------------------

    def set(self, name, records):
        """Replaces everything at name with records (forms: module docstring)."""
        name = _key(name)
        parsed, timeout, rcode = [], False, None
        for rec in records:
            if isinstance(rec, str) and rec.upper() == "TIMEOUT":
                timeout = True
                continue
            if isinstance(rec, dict):
                (rtype, value), = rec.items()
            else:
                rtype, value = rec
            rtype = str(rtype).upper()
            if rtype == "TIMEOUT":
                timeout = bool(value)
            elif rtype == "RCODE":
                rcode = _rcode(value)
            else:
                parsed.extend(self._rdata(rtype, value))
        with self.lock:
            self.records[name] = parsed
            if timeout:
                self.timeout.add(name)
            else:
                self.timeout.discard(name)
            if rcode is not None:
                self.rcodes[name] = rcode
            else:
                self.rcodes.pop(name, None)

    def remove(self, name):
        name = _key(name)
        with self.lock:
            self.records.pop(name, None)
            self.timeout.discard(name)
            self.rcodes.pop(name, None)

    @staticmethod
    def _rdata(rtype, value):
        """A list of (qtype, RD) for one record; TXT/SPF 'NONE' is no record."""
        if rtype in ("TXT", "SPF"):
            if value == "NONE":
                return []
            strings = _txt_strings(value)
            if rtype == "TXT":
                return [(QTYPE.TXT, TXT(strings))]
            wire = b"".join(bytes([len(s)]) + s for s in strings)
            return [(99, _Raw(wire))]
        if rtype == "A":
            return [(QTYPE.A, A(str(value)))]
        if rtype == "AAAA":
            return [(QTYPE.AAAA, AAAA(str(value)))]
        if rtype == "MX":
            if isinstance(value, str):
                pref, host = value.split(None, 1)
            else:
                pref, host = value
            return [(QTYPE.MX, MX(str(host), int(pref)))]
        if rtype in ("PTR", "CNAME", "NS"):
            cls = {"PTR": PTR, "CNAME": CNAME, "NS": NS}[rtype]
            return [(getattr(QTYPE, rtype), cls(str(value)))]
        if rtype == "TLSA" and not isinstance(value, str):
            usage, sel, mtype, data = value
            data = bytes.fromhex(data) if isinstance(data, str) else bytes(data)
            return [(52, _Raw(bytes([usage, sel, mtype]) + data))]
        rr = RR.fromZone("x. 300 IN %s %s" % (rtype, value))[0]
        return [(rr.rtype, rr.rdata)]

    # ---- answering ----------------------------------------------------

    def _exists(self, name):
        if name in self.records or name in self.timeout or name in self.rcodes:
            return True
        n = len(name)
        return any(len(k) > n and k[-n:] == name for k in self.records) if n else True

    def _wildcard(self, name):
        """The '*.parent' owner that covers name, if name has nothing itself."""
        for i in range(1, len(name)):
            parent = name[i:]
            star = (b"*",) + parent
            if star in self.records:
                return star
            if self._exists(parent):
                return None  # the closest encloser exists and has no wildcard
        return None

    def _soa(self, name):
        apex = name[-1:] or (b"test",)
        return RR(DNSLabel(apex), QTYPE.SOA, ttl=self.ttl,
                  rdata=SOA(DNSLabel((b"ns",) + apex), DNSLabel((b"hostmaster",) + apex),
                            (1, 3600, 600, 86400, 60)))

    def resolve(self, request):
        """The reply (a DNSRecord) to request, or None to stay silent."""
        reply = request.reply()  # QR, AA, RD copied, ID
        q = request.q
        qname = _key(q.qname)
        qtype = q.qtype
        with self.lock:
            self.queries.append((_text(qname), QTYPE.get(qtype, str(qtype))))
            name, label, seen = qname, q.qname, set()
            while True:
                owner = name if name in self.records else (self._wildcard(name) or name)
                recs = self.records.get(owner, [])
                match = [rd for t, rd in recs if t == qtype]
                if match:
                    for rd in match:
                        reply.add_answer(RR(label, qtype, ttl=self.ttl, rdata=rd))
                    return reply
                cname = [rd for t, rd in recs if t == QTYPE.CNAME]
                if cname and qtype != QTYPE.CNAME and name not in seen and len(seen) < 16:
                    seen.add(name)
                    reply.add_answer(RR(label, QTYPE.CNAME, ttl=self.ttl, rdata=cname[0]))
                    label = cname[0].label
                    name = _key(label)
                    if not self._exists(name):
                        reply.header.rcode = RCODE.NXDOMAIN
                        reply.add_auth(self._soa(name))
                        return reply
                    continue
                if name in self.timeout:
                    return None
                if name in self.rcodes:
                    reply.header.rcode = self.rcodes[name]
                    return reply
                if not (self._exists(name) or owner != name):
                    reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(self._soa(name))
                return reply

    def handle(self, data, udp):
        try:
            request = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - garbage in: say FORMERR if we can
            if len(data) < 12:
                return None
            return data[:2] + b"\x81\x01" + b"\x00" * 8
        reply = self.resolve(request)
        if reply is None:
            return None
        wire = reply.pack()
        if udp:
            limit = 512
            for ar in request.ar:
                if ar.rtype == QTYPE.OPT:
                    limit = max(512, ar.rclass)
            if len(wire) > limit:
                reply.rr, reply.auth, reply.ar = [], [], []
                reply.header.tc = 1
                wire = reply.pack()
        return wire

    # ---- sockets ------------------------------------------------------

    def start(self):
        outer = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                out = outer.handle(data, udp=True)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(5)
                try:
                    while True:
                        head = self._read(2)
                        if head is None:
                            return
                        (n,) = struct.unpack("!H", head)
                        data = self._read(n)
                        if data is None:
                            return
                        out = outer.handle(data, udp=False)
                        if out is None:
                            continue
                        self.request.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    return

            def _read(self, n):
                buf = b""
                while len(buf) < n:
                    chunk = self.request.recv(n - len(buf))
                    if not chunk:
                        return None
                    buf += chunk
                return buf

        class UDP(socketserver.ThreadingUDPServer):
            daemon_threads = True
            allow_reuse_address = False

        class TCP(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        UDP.address_family = TCP.address_family = family
        for _ in range(50):  # bounded: find a port free for both UDP and TCP
            udp = UDP((self.host, 0), UDPHandler)
            port = udp.server_address[1]
            try:
                tcp = TCP((self.host, port), TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no free port for the DNS server")
        self.port = port
        self._servers = [udp, tcp]
        for srv in self._servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers, self._threads = [], []

    @property
    def address(self):
        """The dns_resolver value that reaches this server."""
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()



class SignedZone:
    """A DNSSEC-signed zone (RFC 4033-4035) made with dnspython, for DANE tests.

        zone = SignedZone("dane.test", {
            "dane.test": [("MX", "10 mx.dane.test")],
            "mx.dane.test": [("A", "127.0.0.1")],
            "_25._tcp.mx.dane.test": [("TLSA", "3 1 1 ABCD...")],
        })
        zone.write_anchor(path)        # its DS, for unbound's trust anchor
        zone.corrupt("_25._tcp.mx.dane.test", "TLSA")  # a bad signature: bogus

    Records are zone-file RDATA text (a CNAME is followed within the zone,
    its target's answer or denial added). The apex gets SOA, NS and a DNSKEY
    (one ECDSA P-256 key, flags 257); every RRset is signed, and an NSEC
    chain over all names (empty non-terminals need none: RFC 4035 3.1.3.2)
    gives signed denial: NXDOMAIN with the NSEC covering the name and the one
    covering the wildcard, NODATA with the name's own NSEC.
    """

    def __init__(self, origin, records, ttl=300):
        import datetime
        import dns.dnssec
        import dns.name
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        from cryptography.hazmat.primitives.asymmetric import ec

        self.origin = dns.name.from_text(origin)
        self.ttl = ttl
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(self.key.public_key(), "ECDSAP256SHA256", flags=257)
        self.rrsets = {}  # (name, rdtype) -> RRset
        o = origin.rstrip(".") + "."
        self._add(o, "SOA", "ns.%s hostmaster.%s 1 3600 600 86400 60" % (o, o))
        self._add(o, "NS", "ns.%s" % o)
        self._add(o, "DNSKEY", self.dnskey.to_text())
        for name, recs in records.items():
            for rtype, text in recs:
                self._add(name, rtype, text)
        # The NSEC chain, in canonical order (RFC 4034 6.1): each names the next.
        names = sorted({n for n, _ in self.rrsets})
        for i, n in enumerate(names):
            types = sorted({t for m, t in self.rrsets if m == n} |
                           {dns.rdatatype.RRSIG, dns.rdatatype.NSEC})
            text = "%s %s" % (names[(i + 1) % len(names)].to_text(),
                              " ".join(dns.rdatatype.to_text(t) for t in types))
            self._add(n, "NSEC", text)
        self.names = names
        now = datetime.datetime.now(datetime.timezone.utc)
        self.sigs = {}
        for key, rrset in self.rrsets.items():
            sig = dns.dnssec.sign(rrset, self.key, self.origin, self.dnskey,
                                  inception=now - datetime.timedelta(hours=1),
                                  expiration=now + datetime.timedelta(days=7))
            self.sigs[key] = dns.rrset.from_rdata(rrset.name, rrset.ttl, sig)

    def _add(self, name, rtype, text):
        import dns.name
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        n = dns.name.from_text(name) if isinstance(name, str) else name
        t = dns.rdatatype.from_text(rtype)
        rd = dns.rdata.from_text(dns.rdataclass.IN, t, text, origin=self.origin,
                                 relativize=False)
        key = (n, t)
        if key not in self.rrsets:
            self.rrsets[key] = dns.rrset.RRset(n, dns.rdataclass.IN, t)
            self.rrsets[key].update_ttl(self.ttl)
        self.rrsets[key].add(rd)

    def ds_text(self):
        import dns.dnssec
        ds = dns.dnssec.make_ds(self.origin, self.dnskey, "SHA256")
        return "%s IN DS %s" % (self.origin.to_text(), ds.to_text())

    def write_anchor(self, path):
        """Writes the zone's DS as a trust-anchor file (unbound's format)."""
        with open(path, "w") as f:
            f.write(self.ds_text() + "\n")
        return path

    def corrupt(self, name, rtype):
        """Spoils the signature over one RRset, as an attacker's change would."""
        import dns.name
        import dns.rdatatype
        import dns.rrset
        key = (dns.name.from_text(name), dns.rdatatype.from_text(rtype))
        sig = self.sigs[key][0]
        bad = bytearray(sig.signature)
        bad[0] ^= 0xFF
        self.sigs[key] = dns.rrset.from_rdata(key[0], self.sigs[key].ttl,
                                              sig.replace(signature=bytes(bad)))

    def covers(self, qname):
        return qname.is_subdomain(self.origin)

    def _with_sig(self, key):
        return [self.rrsets[key], self.sigs[key]]

    def _covering_nsec(self, qname):
        """The NSEC whose owner sorts before qname and whose next name after it."""
        import dns.rdatatype
        prev = self.names[0]
        for n in self.names:
            if n <= qname:
                prev = n
        return self._with_sig((prev, dns.rdatatype.NSEC))

    def answer(self, query):
        """A dnspython response to a dnspython query for a name in this zone."""
        import dns.flags
        import dns.message
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        resp.use_edns(0, dns.flags.DO, 1232)
        q = query.question[0]
        self._fill(resp, q.name, q.rdtype, 0)
        return resp

    def _fill(self, resp, qname, qtype, depth):
        """Adds the answer for (qname, qtype) to resp, following CNAMEs in the zone."""
        import dns.name
        import dns.rcode
        import dns.rdatatype
        soa = self._with_sig((self.origin, dns.rdatatype.SOA))
        if (qname, qtype) in self.rrsets:
            resp.answer.extend(self._with_sig((qname, qtype)))
            return
        cname = (qname, dns.rdatatype.CNAME)
        if qtype != dns.rdatatype.CNAME and cname in self.rrsets and depth < 8:
            resp.answer.extend(self._with_sig(cname))
            target = self.rrsets[cname][0].target
            if self.covers(target):
                self._fill(resp, target, qtype, depth + 1)
            return
        exists = any(n == qname or n.is_subdomain(qname) for n in self.names)
        if exists:
            resp.authority.extend(soa)
            if (qname, dns.rdatatype.NSEC) in self.rrsets:
                resp.authority.extend(self._with_sig((qname, dns.rdatatype.NSEC)))
            else:  # an empty non-terminal: the NSEC that skips over it
                resp.authority.extend(self._covering_nsec(qname))
            return
        resp.set_rcode(dns.rcode.NXDOMAIN)
        resp.authority.extend(soa)
        seen = set()
        # The closest encloser is the longest existing ancestor; its wildcard must not exist.
        ce = qname.parent()
        while not any(n == ce or n.is_subdomain(ce) for n in self.names):
            ce = ce.parent()
        for target in (qname, dns.name.Name((b"*",) + ce.labels)):
            rrs = self._covering_nsec(target)
            if rrs[0].name not in seen:
                seen.add(rrs[0].name)
                resp.authority.extend(rrs)


class SignedDNSServer(DNSServer):
    """DNSServer that also serves SignedZone objects (names under them are
    answered from the signed zone, every other name as DNSServer does):

        with SignedDNSServer([zone], zone={"plain.test": [...]}) as dns: ...
    """

    def __init__(self, signed_zones, **kwargs):
        super().__init__(**kwargs)
        self.signed = list(signed_zones)

    def handle(self, data, udp):
        import dns.exception
        import dns.message
        try:
            query = dns.message.from_wire(data)
            qname = query.question[0].name
        except Exception:  # noqa: BLE001 - not for us: DNSServer answers FORMERR
            return super().handle(data, udp)
        zone = next((z for z in self.signed if z.covers(qname)), None)
        if zone is None:
            return super().handle(data, udp)
        import dns.rdatatype
        with self.lock:
            self.queries.append((qname.to_text(omit_final_dot=True).lower(),
                                 dns.rdatatype.to_text(query.question[0].rdtype)))
            resp = zone.answer(query)
        limit = 65535
        if udp:
            limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return resp.to_wire(max_size=limit)
        except dns.exception.TooBig:
            resp.answer, resp.authority, resp.additional = [], [], []
            resp.flags |= dns.flags.TC
            return resp.to_wire()

if __name__ == "__main__":
    import signal
    import sys
    import time

    text = open(sys.argv[1]).read()
    if sys.argv[1].endswith(".json"):
        import json
        srv = DNSServer(zone=json.loads(text))
    else:
        srv = DNSServer(zone_text=text)
    srv.start()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print(srv.address, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
