"""The lean scenarios of issue 13 and the before/after comparisons (issues
11, 12, 14, 15): both servers doing the same minimal work behind their 250
(acceptance: discard after the durable commit; relay: forward to one
smtp-sink), CPU from each server's own cgroup, medians of interleaved
rounds. Imported by bench.py (see bench/README.md for the method).
"""
import asyncio
import math
import os
import pathlib
import re
import smtplib
import sys
import threading
import time

import bench as B

# ---------------------------------------------------------------- accounting


class CpuGroup:
    """A cgroup (v1 cpuacct, else v2) holding one server's whole process
    tree: a process started through prefix() joins it before it execs, and
    everything it forks stays in it, so cpuacct.usage counts every process
    that ever ran there, reaped or not. ok is False where no cgroup can be
    made (then the /proc tree accounting is used)."""

    ROOTS = (pathlib.Path("/sys/fs/cgroup/cpuacct"), pathlib.Path("/sys/fs/cgroup"))

    def __init__(self, name):
        self.path, self.usage_file = None, None
        for root in self.ROOTS:
            cand = root / ("hybench-%d-%s" % (os.getpid(), name))
            try:
                cand.mkdir()
            except OSError:
                continue
            usage = cand / "cpuacct.usage"
            if usage.exists() or (cand / "cpu.stat").exists():
                self.path, self.usage_file = cand, usage if usage.exists() else cand / "cpu.stat"
                B._cleanups.append(self.remove)
                break
            cand.rmdir()

    @property
    def ok(self):
        return self.path is not None

    def prefix(self):
        # $0 is the cgroup directory; the shell moves itself in, then execs the server.
        return ["/bin/sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', str(self.path)]

    def seconds(self):
        text = self.usage_file.read_text()
        if self.usage_file.name == "cpuacct.usage":
            return int(text) / 1e9
        usec = re.search(r"^usage_usec (\d+)", text, re.M)
        return int(usec.group(1)) / 1e6

    def remove(self):
        """Empty (the server is stopped: kill what is left) and remove."""
        if self.path is None:
            return
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        self.path = None


def cgroup_for(name):
    cg = CpuGroup(name)
    return cg if cg.ok else None


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy since boot (every core:
    user, nice, system, irq, softirq, steal), from /proc/stat."""
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class BenchCpu:
    """How much other work ran beside the bench. The bench moves itself into
    a cgroup of its own at start; what it runs (load generators, sinks) stays
    there, and every server's own cgroup (CpuGroup) is made inside it, so its
    usage is the CPU of everything the bench caused in user space and in
    system calls. The machine's busy time minus that is other work, plus the
    kernel's own threads (the loop device's and the journal's I/O, which the
    bench causes too: so a quiet run still shows a few percent). The load
    average cannot tell this: tasks waiting on the spool's disk count in it,
    so the bench's own load drives it to 20 and more."""

    BASE = pathlib.Path("/sys/fs/cgroup/cpuacct")

    def __init__(self):
        self.path = None
        cand = self.BASE / ("hybench-%d" % os.getpid())
        if (self.BASE / "cpuacct.usage").exists():
            try:
                cand.mkdir()
                (cand / "cgroup.procs").write_text(str(os.getpid()))
                self.path = cand
                CpuGroup.ROOTS = (cand,) + CpuGroup.ROOTS  # servers' groups nest inside
            except OSError:
                try:
                    cand.rmdir()
                except OSError:
                    pass
        self.wall0, self.busy0, self.own0 = time.time(), machine_busy_seconds(), self._own()

    def _own(self):
        return int((self.path / "cpuacct.usage").read_text()) / 1e9 if self.path else 0.0

    def summary(self):
        """{wall, machine, bench, others, others_share} over the run so far;
        None where the bench has no cgroup (cgroup v2 only: no figure)."""
        if self.path is None:
            return None
        wall = time.time() - self.wall0
        machine = machine_busy_seconds() - self.busy0
        bench = self._own() - self.own0
        others = max(0.0, machine - bench)
        return {"wall": wall, "machine": machine, "bench": bench, "others": others,
                "others_share": others / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0}

    def remove(self):
        """Back to the root group, then remove the bench's (the servers' are gone by then)."""
        if self.path is None:
            return
        try:
            (self.BASE / "cgroup.procs").write_text(str(os.getpid()))
            self.path.rmdir()
        except OSError as e:
            print("cleanup: bench cgroup %s: %s" % (self.path, e), file=sys.stderr)
        self.path = None


# ---------------------------------------------------------------- servers

LEAN_RCPT = B.REMOTE_RCPT  # routed to discard (accept) or to the sink (relay)


def make_server(name, mode, sink_port, extra=None, label=None, maillog=False):
    """A server of the lean scenarios. mode "accept": both discard after the
    durable commit (Postfix default_transport = discard; hongyan
    transport_maps = inline:{ * = discard: }); mode "relay": both forward
    to the sink. No client name lookup on either. Postfix logs through
    syslog(3), which goes nowhere here (no /dev/log), so it pays no postlogd;
    hongyan writes its log to stderr, a file: if anything, Postfix's side is
    the lighter (MAILLOG: both log to a file, for the latency scenario).
    Each server runs in a cgroup of its own, named by LABEL."""
    label = label or "%s-%s" % (name, mode)
    work = B.WORK / ("lean-" + label)
    cg = cgroup_for(label)
    if name == "postfix":
        pf = {"smtpd_peername_lookup": "no"}
        if not maillog:
            pf.update({"maillog_file": None, "maillog_file_prefixes": None})
        if mode == "accept":
            pf.update({"default_transport": "discard", "relayhost": None})
        pf.update(extra or {})
        return B.Postfix(work, sink_port, extra=pf, cgroup=cg, name=name)
    hy = {"smtpd_peername_lookup": "no"}
    if not maillog:
        hy["maillog_file"] = None
    if mode == "accept":
        hy.update({"transport_maps": "inline:{ * = discard: }", "relayhost": None})
    hy.update(extra or {})
    binary = B.HONGYAN_BASE if name == "hongyan-base" else None
    return B.Hongyan(work, sink_port, extra=hy, cgroup=cg, name=name, binary=binary)


def lean_accept(srv, sessions, count):
    """COUNT messages over SESSIONS sessions; rate = COUNT / time until
    smtp-source has every 250; CPU from the first connection until the queue
    is empty again (the discard included), per 1,000 messages."""
    q0 = B.settle_queue(srv)
    load = B.loadavg()
    cpu0 = srv.cpu()
    dt, ok, err = B.smtp_source(srv.port, count, sessions, LEAN_RCPT, timeout=max(120, count // 10))
    drained = B.wait_until(lambda: srv.queued() <= q0, max(60, count // 50), 0.05)
    cpu = srv.cpu() - cpu0
    res = {"rate": count / dt if ok else None, "seconds": dt, "ok": ok and drained,
           "cpu_per_1000": cpu / count * 1000, "load": load}
    if not ok:
        res["error"] = err
    elif not drained:
        res["error"] = "%d files still queued" % (srv.queued() - q0)
    return res


def lean_relay(srv, sink, sessions, count):
    r = B.scenario_relay(srv, sink, sessions, count)
    r["load"] = B.loadavg()
    return r


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summarize(runs):
    """Medians of a cell's rounds, the rounds themselves, and the load range."""
    ok = [r for r in runs if r.get("ok")]
    loads = [r["load"] for r in runs if r.get("load") is not None]
    return {"rate": median([r.get("rate") for r in ok]),
            "cpu_per_1000": median([r.get("cpu_per_1000") for r in ok]),
            "rates": [r.get("rate") for r in runs], "ok": bool(ok),
            "load": (min(loads), max(loads)) if loads else None,
            "errors": [r["error"] for r in runs if r.get("error")]}


def start_all(servers):
    for s in servers.values():
        s.start()


def stop_all(servers):
    for s in servers.values():
        s.stop()
        if s.cgroup:
            s.cgroup.remove()


# ---------------------------------------------------------------- scenarios


def quiesce():
    """Before each measured cell: what the cells before it left to write
    (a server's queue-file unlinks, the logs) is flushed now. Both servers'
    spools share one filesystem, so otherwise the next server's first
    directory sync commits the previous server's metadata inside its own
    measurement: hongyan relaying right after Postfix measured 1,684-1,945
    msg/s, right before it 2,507-2,568 (one run, 20 sessions, 2026-12-07).
    Each server's own writes still count in its cells."""
    os.sync()


def scenario_lean(names, sessions, relay_sessions, counts, rounds):
    """Issue 13's lean table: per round, the smtp-sink ceiling and every
    server's acceptance at each session count, then every server's relay;
    the order of the servers reversed every other round. Returns medians."""
    sink = B.Sink("lean").start()
    servers = {}
    try:
        for name in names:
            for mode in ("accept", "relay"):
                servers[(name, mode)] = make_server(name, mode, sink.port)
        start_all(servers)
        raw = {"sink": {}, "accept": {}, "relay": {}}
        for rnd in range(rounds):
            order = names if rnd % 2 == 0 else names[::-1]
            for s in sessions:
                n = counts(s)
                quiesce()
                r = B.scenario_sink(s, n)
                r["load"] = B.loadavg()
                raw["sink"].setdefault(str(s), []).append(r)
                B.log("round %d: smtp-sink %d sessions: %s msg/s" % (rnd + 1, s, B.fmt_rate(r["rate"])))
                for name in order:
                    quiesce()
                    r = lean_accept(servers[(name, "accept")], s, n)
                    raw["accept"].setdefault(name, {}).setdefault(str(s), []).append(r)
                    B.log("round %d: %s accept %d sessions: %s msg/s, %.2f CPU s/1000 %s" % (
                        rnd + 1, name, s, B.fmt_rate(r["rate"]), r["cpu_per_1000"], r.get("error", "")))
            for s in relay_sessions:
                for name in order:
                    quiesce()
                    r = lean_relay(servers[(name, "relay")], sink, s, counts(s))
                    raw["relay"].setdefault(name, {}).setdefault(str(s), []).append(r)
                    B.log("round %d: %s relay %d sessions: %s msg/s end to end %s" % (
                        rnd + 1, name, s, B.fmt_rate(r["rate"]), r.get("error", "")))
    finally:
        stop_all(servers)
        sink.stop()
    out = {"rounds": rounds, "counts": {str(s): counts(s) for s in set(sessions) | set(relay_sessions)},
           "sink": {s: summarize(v) for s, v in raw["sink"].items()}}
    for sc in ("accept", "relay"):
        out[sc] = {name: {s: summarize(v) for s, v in by.items()} for name, by in raw[sc].items()}
    return out


def scenario_sustained(names, runs=4, count=10000, sessions=100, fresh_fs=None):
    """Issue 13: RUNS acceptance runs of COUNT messages in a row at SESSIONS
    sessions on one lean (discard) server, without a restart: what the
    spool's filesystem accumulates shows in the later runs. FRESH_FS, if
    given, makes a new spool filesystem before each server, so that none
    inherits what the one before left in it."""
    out = {}
    for name in names:
        if fresh_fs:
            fresh_fs()
        srv = make_server(name, "accept", 0, label=name + "-sustained")
        try:
            srv.start()
            out[name] = []
            for i in range(runs):
                r = lean_accept(srv, sessions, count)
                out[name].append(r)
                B.log("%s sustained run %d/%d: %s msg/s, %.2f CPU s/1000 %s" % (
                    name, i + 1, runs, B.fmt_rate(r["rate"]), r["cpu_per_1000"], r.get("error", "")))
        finally:
            srv.stop()
            if srv.cgroup:
                srv.cgroup.remove()
    return {"runs": runs, "count": count, "sessions": sessions, "by": out}


def scenario_pair(label, variants, sessions, count, rounds, during=None):
    """Acceptance of hongyan (lean) in two configurations, A and B, both
    running, measured in alternate runs (A B, B A, ...). VARIANTS: [(name,
    extra settings)]. DURING(name) may return a context manager running
    beside that variant's load (the metrics scraper). Returns medians and
    the ratio B / A of rates and of CPU."""
    servers = {}
    raw = {}
    try:
        for name, extra in variants:
            servers[name] = make_server("hongyan", "accept", 0, extra=extra, label="%s-%s" % (label, name))
        start_all(servers)
        names = [n for n, _ in variants]
        for rnd in range(rounds):
            for name in (names if rnd % 2 == 0 else names[::-1]):
                ctx = during(name, servers[name]) if during else None
                if ctx:
                    ctx.start()
                try:
                    r = lean_accept(servers[name], sessions, count)
                finally:
                    if ctx:
                        r["extra"] = ctx.stop()
                raw.setdefault(name, []).append(r)
                B.log("round %d: %s %s: %s msg/s, %.2f CPU s/1000 %s" % (
                    rnd + 1, label, name, B.fmt_rate(r["rate"]), r["cpu_per_1000"], r.get("error", "")))
    finally:
        stop_all(servers)
    out = {"sessions": sessions, "count": count, "rounds": rounds,
           "by": {n: summarize(v) for n, v in raw.items()},
           "cpu_rounds": {n: [r.get("cpu_per_1000") for r in v] for n, v in raw.items()},
           "extra": {n: [r.get("extra") for r in v] for n, v in raw.items()}}
    a, b = (out["by"].get(n, {}) for n in names[:2])
    out["rate_ratio"] = b["rate"] / a["rate"] if a.get("rate") and b.get("rate") else None
    out["cpu_ratio"] = (b["cpu_per_1000"] / a["cpu_per_1000"]
                        if a.get("cpu_per_1000") and b.get("cpu_per_1000") else None)
    return out


def scenario_restrict(sessions, count, rounds):
    """Issue 14: acceptance with no restriction lists of our own (the
    default relay check only) against `permit_mynetworks,
    reject_unauth_destination` and one reject_rbl_client in
    smtpd_client_restrictions (asked on every connection), answered NXDOMAIN
    by a local DNS server (tests/integration/dnsserver.py) with TTL 0, so
    that no answer is cached and every connection's query reaches it: all
    the load comes from 127.0.0.1, and a cached answer would make the list
    look free where real mail comes from many addresses."""
    import sys
    sys.path.insert(0, str(B.ROOT / "tests" / "integration"))
    from dnsserver import DNSServer
    with DNSServer({"bench.test": [("A", "192.0.2.1")]}, ttl=0) as dns:
        out = scenario_pair("restrict", [
            ("empty", {"dns_resolver": dns.address}),
            ("lists", {"dns_resolver": dns.address,
                       "smtpd_client_restrictions": "reject_rbl_client rbl.bench.test",
                       "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination"})],
            sessions, count, rounds)
        out["rbl_queries"] = len([q for q in dns.queries if q[0].endswith("rbl.bench.test")])
    return out


class Scraper:
    """Fetches /metrics every second (Prometheus' default is every 15 s:
    this is harsher) until stopped; stop() returns the number of scrapes."""

    def __init__(self, port):
        self.port, self.got = port, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import urllib.request
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as r:
                    r.read()
                    self.got += 1
            except OSError:
                pass
            if self._stop.wait(1.0):
                break

    def start(self):
        self._t.start()

    def stop(self):
        self._stop.set()
        self._t.join(timeout=10)
        return self.got


def scenario_metrics(sessions, count, rounds):
    """Issue 15: acceptance with metrics_listen unset, and set with /metrics
    scraped every second during the run."""
    mport = B.free_port()
    out = scenario_pair("metrics", [("off", {}), ("on", {"metrics_listen": "127.0.0.1:%d" % mport})],
                        sessions, count, rounds,
                        during=lambda name, srv: Scraper(mport) if name == "on" else None)
    out["scrapes"] = sum(x or 0 for x in out["extra"].get("on", []))
    return out


def scenario_tls_pair(names, rounds, count=400, threads=8):
    """Issue 12: full STARTTLS handshakes/s of two hongyan binaries, both
    running as configured (smtpd_tls_security_level = may, the bench's
    certificate), measured in alternate runs; medians and the ratio."""
    servers = {n: B.Hongyan(B.WORK / ("tls-" + n), 0, cgroup=cgroup_for(n + "-tls"), name=n,
                            binary=B.HONGYAN_BASE if n == "hongyan-base" else None,
                            extra={"relayhost": None})
               for n in names}
    raw = {}
    try:
        start_all(servers)
        for rnd in range(rounds):
            for n in (names if rnd % 2 == 0 else names[::-1]):
                load = B.loadavg()
                r = B.tls_rate(servers[n], count, threads)
                r["load"], r["ok"] = load, r.pop("all_done")
                raw.setdefault(n, []).append(r)
                B.log("round %d: %s STARTTLS: %s handshakes/s, %s CPU s/1000 %s" % (
                    rnd + 1, n, B.fmt_rate(r.get("rate")), _cpu(r.get("cpu_per_1000")), r.get("error", "")))
    finally:
        stop_all(servers)
    return {"rounds": rounds, "count": count, "by": {n: summarize(v) for n, v in raw.items()}}


# ---------------------------------------------------------------- latency


class StampSink:
    """A minimal SMTP sink in a thread of this process that records the
    moment each message's final dot arrives, keyed by the token in its
    Subject (smtp-sink cannot say when a given message arrived)."""

    def __init__(self):
        self.port = B.free_port()
        self.arrivals = {}
        self.loop = asyncio.new_event_loop()
        self._t = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _session(self, r, w):
        w.write(b"220 stamp.bench.test ESMTP\r\n")
        in_data, token = False, None
        try:
            while True:
                line = await asyncio.wait_for(r.readline(), 60)
                if not line:
                    break
                if in_data:
                    if line == b".\r\n":
                        self.arrivals[token] = time.monotonic()
                        in_data, token = False, None
                        w.write(b"250 2.0.0 Ok: queued\r\n")
                    elif token is None and line.lower().startswith(b"subject: bench-"):
                        token = line.split(b"-", 1)[1].strip().decode("ascii", "replace")
                    continue
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    w.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                elif verb == b"QUIT":
                    w.write(b"221 2.0.0 Bye\r\n")
                    await w.drain()
                    break
                else:
                    w.write(b"250 stamp.bench.test\r\n" if verb in (b"EHLO", b"HELO") else b"250 2.0.0 Ok\r\n")
                await w.drain()
        except (OSError, asyncio.TimeoutError):
            pass
        w.close()

    def start(self):
        self._t.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, "127.0.0.1", self.port), self.loop)
        self.server = fut.result(10)
        B._cleanups.append(self.stop)
        return self

    def stop(self):
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.server.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._t.join(timeout=10)


def _send_one(port, token):
    """One message, one connection; returns the monotonic time at which the
    client had the 250 to its DATA."""
    body = "x" * 76 + "\r\n"
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: bench-%s\r\nMessage-ID: <%s@client.example.com>\r\n\r\n"
           % (B.SENDER, LEAN_RCPT, token, token)) + body * (B.MSG_SIZE // len(body))
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com", timeout=30) as c:
        c.ehlo()
        c.mail(B.SENDER)
        c.rcpt(LEAN_RCPT)
        code, _ = c.data(msg.encode())
        t = time.monotonic()
        if code != 250:
            raise RuntimeError("DATA answered %d" % code)
    return t


def percentile(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else None


def _log_delays(maillog):
    """delay= of every relayed delivery in a log, and delays=a/b/c/d (both
    servers write it: b is the time in the queue manager, from the message
    becoming due, right after its commit, to the hand-over to the agent)."""
    total, qmgr = [], []
    try:
        text = maillog.read_text(errors="replace")
    except OSError:
        return total, qmgr
    for line in text.splitlines():
        if "status=sent" not in line or "to=<%s>" % LEAN_RCPT not in line:
            continue
        m = re.search(r"\bdelay=([\d.]+)", line)
        if m:
            total.append(float(m.group(1)))
        m = re.search(r"\bdelays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)", line)
        if m:
            qmgr.append(float(m.group(2)))
    return total, qmgr


def scenario_latency(names, n=200, gap=0.1):
    """Issue 13: N single messages, one at a time, each sent once the
    previous one has reached the sink and GAP seconds have passed (an idle
    server); relayed to a StampSink. Latency = arrival of the final dot at
    the sink - the client's 250. Servers in turn, message by message, so a
    change of the machine's load falls on all alike."""
    sink = StampSink().start()
    servers = {}
    try:
        for name in names:
            # Both log to a file here: the delays are read from it.
            servers[name] = make_server(name, "relay", sink.port, label=name + "-latency", maillog=True)
        start_all(servers)
        lat = {name: [] for name in names}
        lost = {name: 0 for name in names}
        for i in range(n):
            for name in names:
                token = "%s-%d" % (name, i)
                t = _send_one(servers[name].port, token)
                if not B.wait_until(lambda: token in sink.arrivals, 10, 0.0005):
                    lost[name] += 1
                    continue
                lat[name].append(sink.arrivals[token] - t)
                time.sleep(gap)
        out = {"n": n, "by": {}}
        for name in names:
            xs = lat[name]
            total, qmgr = _log_delays(servers[name].maillog)
            out["by"][name] = {
                "p50_ms": percentile(xs, 50) * 1000 if xs else None,
                "p99_ms": percentile(xs, 99) * 1000 if xs else None,
                "max_ms": max(xs) * 1000 if xs else None, "arrived": len(xs), "late": lost[name],
                "log_delay_p50": percentile(total, 50), "log_delay_p99": percentile(total, 99),
                "log_qmgr_p50": percentile(qmgr, 50), "log_qmgr_p99": percentile(qmgr, 99)}
        return out
    finally:
        stop_all(servers)
        sink.stop()


# ---------------------------------------------------------------- report


def _x(a, b):
    return "%.2fx" % (a / b) if a and b else "—"


def _cpu(v):
    return "%.2f" % v if v else "—"


def _load(cells):
    loads = [c["load"] for c in cells if c and c.get("load")]
    if not loads:
        return "—"
    return "%.1f–%.1f" % (min(lo for lo, _ in loads), max(hi for _, hi in loads))


def _paired(h, b):
    """Median of the per-round ratios h / b: each round's two runs were made
    back to back, so this cancels the load's drift between rounds better than
    the ratio of the medians."""
    rs = [x / y for x, y in zip(h.get("rates", []), b.get("rates", [])) if x and y]
    return "%.2fx" % median(rs) if rs else "—"


def _check(ok):
    return "**met**" if ok else "not met"


def render(results, L):
    """Appends the lean scenarios' sections to the report lines L."""
    lean = results.get("lean")
    if lean:
        acc, rel, sink = lean["accept"], lean["relay"], lean["sink"]
        names = list(acc)
        extra = [n for n in names if n not in ("postfix", "hongyan")]
        L.append("## Lean acceptance (issue 13): both discard after the durable commit, no client name lookup")
        L.append("")
        L.append("Medians of %d interleaved rounds; messages per run: %s. CPU from each server's cgroup "
                 "(every process of it), from the first connection until its queue is empty."
                 % (lean["rounds"], ", ".join("%s at %s sessions" % (v, k)
                                              for k, v in sorted(lean["counts"].items(), key=lambda kv: int(kv[0])))))
        L.append("")
        L.append("| sessions | smtp-sink | Postfix | hongyan | %shongyan / Postfix | hongyan / sink | "
                 "CPU s/1000 Postfix / hongyan | Postfix CPU / hongyan CPU | load (1 min) | hongyan rounds |"
                 % "".join("%s | " % n for n in extra))
        L.append("|---:|---:|---:|---:|%s---:|---:|---|---:|---|---|" % ("---:|" * len(extra)))
        for s in sorted(sink.keys() | acc.get("hongyan", {}).keys(), key=int):
            p, h, k = acc.get("postfix", {}).get(s, {}), acc.get("hongyan", {}).get(s, {}), sink.get(s, {})
            L.append("| %s | %s | %s | %s | %s%s | %s | %s / %s | %s | %s | %s |" % (
                s, B.fmt_rate(k.get("rate")), B.fmt_rate(p.get("rate")), B.fmt_rate(h.get("rate")),
                "".join("%s | " % B.fmt_rate(acc[n].get(s, {}).get("rate")) for n in extra),
                _x(h.get("rate"), p.get("rate")), _x(h.get("rate"), k.get("rate")),
                _cpu(p.get("cpu_per_1000")), _cpu(h.get("cpu_per_1000")),
                _x(p.get("cpu_per_1000"), h.get("cpu_per_1000")),
                _load([k] + [acc[n].get(s) for n in names]),
                ", ".join(B.fmt_rate(x) for x in h.get("rates", []))))
        L.append("")
        if rel:
            L.append("## Lean relay to one smtp-sink, end to end (first connection to the sink's last 250)")
            L.append("")
            L.append("| sessions | Postfix | hongyan | %shongyan / Postfix | CPU s/1000 Postfix / hongyan | "
                     "load (1 min) |" % "".join("%s | " % n for n in extra))
            L.append("|---:|---:|---:|%s---:|---|---|" % ("---:|" * len(extra)))
            for s in sorted(rel.get("hongyan", {}).keys() | rel.get("postfix", {}).keys(), key=int):
                p, h = rel.get("postfix", {}).get(s, {}), rel.get("hongyan", {}).get(s, {})
                L.append("| %s | %s | %s | %s%s | %s / %s | %s |" % (
                    s, B.fmt_rate(p.get("rate")), B.fmt_rate(h.get("rate")),
                    "".join("%s | " % B.fmt_rate(rel[n].get(s, {}).get("rate")) for n in extra),
                    _x(h.get("rate"), p.get("rate")), _cpu(p.get("cpu_per_1000")),
                    _cpu(h.get("cpu_per_1000")), _load([rel[n].get(s) for n in rel])))
            L.append("")
        p20 = acc.get("postfix", {})
        h20 = acc.get("hongyan", {})
        g = lambda d, s, k="rate": d.get(s, {}).get(k)
        checks = []
        for s in ("20", "100"):
            if g(h20, s) and g(p20, s):
                checks.append("acceptance ≥ 4x Postfix at %s sessions: %s (%s)" % (
                    s, _check(g(h20, s) >= 4 * g(p20, s)), _x(g(h20, s), g(p20, s))))
            if g(h20, s) and g(sink, s):
                checks.append("acceptance ≥ 50%% of the smtp-sink ceiling at %s sessions: %s (%.0f%%)" % (
                    s, _check(g(h20, s) >= 0.5 * g(sink, s)), 100 * g(h20, s) / g(sink, s)))
            if g(h20, s, "cpu_per_1000") and g(p20, s, "cpu_per_1000"):
                checks.append("CPU per message ≤ 1/6 of Postfix's at %s sessions: %s (1/%.1f)" % (
                    s, _check(g(p20, s, "cpu_per_1000") >= 6 * g(h20, s, "cpu_per_1000")),
                    g(p20, s, "cpu_per_1000") / g(h20, s, "cpu_per_1000")))
            if g(rel.get("hongyan", {}), s) and g(rel.get("postfix", {}), s):
                hr, pr = g(rel["hongyan"], s), g(rel["postfix"], s)
                checks.append("relay ≥ 4x Postfix at %s sessions: %s (%s)" % (s, _check(hr >= 4 * pr), _x(hr, pr)))
        if g(h20, "1") and g(p20, "1"):
            checks.append("acceptance ≥ 1.6x Postfix with 1 session: %s (%s)" % (
                _check(g(h20, "1") >= 1.6 * g(p20, "1")), _x(g(h20, "1"), g(p20, "1"))))
        if g(h20, "20") and g(h20, "100"):
            checks.append("rate at 100 sessions not below the rate at 20: %s (%s / %s)" % (
                _check(g(h20, "100") >= g(h20, "20")), B.fmt_rate(g(h20, "100")), B.fmt_rate(g(h20, "20"))))
        if checks:
            L.append("Issue 13's targets in this run:")
            L.append("")
            L.extend("- " + c for c in checks)
            L.append("")
    tls = results.get("tls", {})
    acc = (lean or {}).get("accept", {})
    rel = (lean or {}).get("relay", {})
    if "hongyan-base" in acc or tls.get("hongyan-base") or results.get("tls_pair"):
        L.append("## Before / after: hongyan / hongyan-base (same run; 1.00x = no change)")
        L.append("")
        L.append("| scenario | sessions | hongyan-base msg/s | hongyan msg/s | rate ratio | median of per-round "
                 "ratios | CPU s/1000 base / hongyan | hongyan rounds | base rounds |")
        L.append("|---|---:|---:|---:|---:|---:|---|---|---|")
        for sc, by in (("accept", acc), ("relay", rel)):
            for s in sorted(by.get("hongyan-base", {}), key=int):
                h, b = by["hongyan"].get(s, {}), by["hongyan-base"][s]
                L.append("| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
                    sc, s, B.fmt_rate(b.get("rate")), B.fmt_rate(h.get("rate")),
                    _x(h.get("rate"), b.get("rate")), _paired(h, b), _cpu(b.get("cpu_per_1000")),
                    _cpu(h.get("cpu_per_1000")), ", ".join(B.fmt_rate(x) for x in h.get("rates", [])),
                    ", ".join(B.fmt_rate(x) for x in b.get("rates", []))))
        pair = results.get("tls_pair", {}).get("by", {})
        if pair.get("hongyan-base") and pair.get("hongyan"):
            h, b = pair["hongyan"], pair["hongyan-base"]
            L.append("| STARTTLS handshakes/s (%d interleaved rounds) | 8 threads | %s | %s | %s | %s | %s / %s | %s | %s |"
                     % (results["tls_pair"]["rounds"], B.fmt_rate(b.get("rate")), B.fmt_rate(h.get("rate")),
                        _x(h.get("rate"), b.get("rate")), _paired(h, b), _cpu(b.get("cpu_per_1000")),
                        _cpu(h.get("cpu_per_1000")),
                        ", ".join(B.fmt_rate(x) for x in h.get("rates", [])),
                        ", ".join(B.fmt_rate(x) for x in b.get("rates", []))))
        if tls.get("hongyan-base") and tls.get("hongyan"):
            h, b = tls["hongyan"], tls["hongyan-base"]
            L.append("| STARTTLS handshakes/s (`tls` scenario, one run each) | 8 threads | %s | %s | %s | | %s / %s | | |" % (
                B.fmt_rate(b.get("rate")), B.fmt_rate(h.get("rate")), _x(h.get("rate"), b.get("rate")),
                _cpu(b.get("cpu_per_1000")), _cpu(h.get("cpu_per_1000"))))
        L.append("")
    sus = results.get("sustained")
    if sus:
        L.append("## Sustained (issue 13): %d runs of %d messages in a row at %d sessions, lean acceptance"
                 % (sus["runs"], sus["count"], sus["sessions"]))
        L.append("")
        L.append("| server | msg/s per run | CPU s/1000 per run | last / first | load (1 min) per run |")
        L.append("|---|---|---|---:|---|")
        for name, runs in sus["by"].items():
            rates = [r.get("rate") for r in runs]
            L.append("| %s | %s | %s | %s | %s |" % (
                name, " → ".join(B.fmt_rate(x) for x in rates),
                " → ".join(_cpu(r.get("cpu_per_1000")) for r in runs),
                _x(rates[-1], rates[0]) if rates else "—",
                ", ".join("%.1f" % r["load"] for r in runs)))
        h, p = sus["by"].get("hongyan"), sus["by"].get("postfix")
        if h and p and h[-1].get("rate") and p[-1].get("rate") and h[0].get("rate"):
            L.append("")
            L.append("Targets: the last run keeps ≥ 90%% of the first: %s (%.1f%%); the last run ≥ 4x Postfix's "
                     "last: %s (%s)." % (_check(h[-1]["rate"] >= 0.9 * h[0]["rate"]), 100 * h[-1]["rate"] / h[0]["rate"],
                                         _check(h[-1]["rate"] >= 4 * p[-1]["rate"]), _x(h[-1]["rate"], p[-1]["rate"])))
        L.append("")
    lat = results.get("latency")
    if lat:
        L.append("## Single-message latency (issue 13): %d messages one at a time, idle server, relayed to a "
                 "local sink" % lat["n"])
        L.append("")
        L.append("Client's 250 to the final dot's arrival at the sink; and from each server's own log: "
                 "`delay=` (arrival to delivery done) and `delays=` b (commit to hand-over to the "
                 "SMTP client; Postfix's format: 0 means under 5 ms).")
        L.append("")
        L.append("| server | p50 ms | p99 ms | max ms | arrived / late | log delay= p50 / p99 s | "
                 "log commit→hand-over p50 / p99 s |")
        L.append("|---|---:|---:|---:|---|---|---|")
        f = lambda v, d=1: ("%%.%df" % d) % v if v is not None else "—"
        for name, r in lat["by"].items():
            L.append("| %s | %s | %s | %s | %d / %d | %s / %s | %s / %s |" % (
                name, f(r["p50_ms"]), f(r["p99_ms"]), f(r["max_ms"]), r["arrived"], r["late"],
                f(r["log_delay_p50"], 2), f(r["log_delay_p99"], 2), f(r["log_qmgr_p50"], 2),
                f(r["log_qmgr_p99"], 2)))
        h = lat["by"].get("hongyan", {})
        if h.get("p99_ms") is not None:
            L.append("")
            L.append("Target: relayed to a local sink within 50 ms at p99: %s (%.1f ms)."
                     % (_check(h["p99_ms"] <= 50), h["p99_ms"]))
        if h.get("log_qmgr_p99") is not None:
            # The log's b is rounded to 0.01 s: 0 means under 5 ms.
            L.append("")
            L.append("Target: handed to its delivery agent within 5 ms of its commit at p99 (the log's "
                     "delays= b): %s (%s)." % (_check(h["log_qmgr_p99"] < 0.005),
                                               "0, under 5 ms" if h["log_qmgr_p99"] < 0.005
                                               else "%.2f s" % h["log_qmgr_p99"]))
        L.append("")
    for key, title, a, b, target, what in (
            ("restrict", "Restriction lists (issue 14)", "empty", "lists", 0.90,
             "`permit_mynetworks, reject_unauth_destination` + one `reject_rbl_client` (local DNS "
             "server, NXDOMAIN) against the default relay check only"),
            ("metrics", "metrics_listen (issue 15)", "off", "on", 0.98,
             "`metrics_listen` set and `/metrics` fetched every second, against unset")):
        r = results.get(key)
        if not r or not r.get("by"):
            continue
        L.append("## %s: hongyan lean acceptance at %d sessions, %d messages, %d interleaved rounds"
                 % (title, r["sessions"], r["count"], r["rounds"]))
        L.append("")
        L.append(what + ".")
        L.append("")
        L.append("| | %s | %s | %s / %s |" % (a, b, b, a))
        L.append("|---|---:|---:|---:|")
        ra, rb = r["by"].get(a, {}), r["by"].get(b, {})
        L.append("| median msg/s | %s | %s | **%s** |" % (B.fmt_rate(ra.get("rate")), B.fmt_rate(rb.get("rate")),
                                                         "%.3f" % r["rate_ratio"] if r.get("rate_ratio") else "—"))
        L.append("| rounds msg/s | %s | %s | |" % (", ".join(B.fmt_rate(x) for x in ra.get("rates", [])),
                                                    ", ".join(B.fmt_rate(x) for x in rb.get("rates", []))))
        L.append("| median CPU s/1000 | %s | %s | %s |" % (
            _cpu(ra.get("cpu_per_1000")), _cpu(rb.get("cpu_per_1000")),
            "%.3f" % r["cpu_ratio"] if r.get("cpu_ratio") else "—"))
        L.append("| load (1 min) | %s | %s | |" % (_load([ra]), _load([rb])))
        L.append("")
        extra = ""
        if key == "restrict":
            extra = " %d DNS list queries reached the DNS server." % r.get("rbl_queries", 0)
        if key == "metrics":
            extra = " %d scrapes answered." % r.get("scrapes", 0)
        if r.get("rate_ratio"):
            L.append("Target: %s at ≥ %.2f of %s's rate: %s (%.3f).%s" % (
                b, target, a, _check(r["rate_ratio"] >= target), r["rate_ratio"], extra))
            L.append("")
    errs = []
    for sc in ("accept", "relay"):
        for name, by in (lean or {}).get(sc, {}).items():
            for s, c in by.items():
                errs += ["lean %s/%s/%s: %s" % (sc, name, s, e) for e in c.get("errors", [])]
    for name, runs in (sus or {}).get("by", {}).items():
        errs += ["sustained/%s: %s" % (name, r["error"]) for r in runs if r.get("error")]
    if errs:
        L.append("## Lean scenarios: failures")
        L.append("")
        L.extend("- " + e for e in errs)
        L.append("")
