#!/usr/bin/python3
"""hongyan benchmarks, side by side with a private Postfix instance and with
smtp-sink alone, on loopback high ports. Started by bench/run.sh (which
fetches Postfix and raises the open-files limit); see bench/README.md.

Every load loop is bounded (message counts and timeouts); every process
started here is stopped at the end, whatever happens.
"""
import argparse
import asyncio
import base64
import datetime
import json
import math
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(os.environ.get("BENCH_ROOT", pathlib.Path(__file__).resolve().parents[1]))
OUT = pathlib.Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))
PFROOT = pathlib.Path(os.environ.get("BENCH_PFROOT", OUT / "postfix-root"))
HONGYAN = pathlib.Path(os.environ.get("HONGYAN_BIN", ROOT / "build" / "hongyan"))
# A second hongyan binary ("before" a change), measured as server hongyan-base.
HONGYAN_BASE = os.environ.get("HONGYAN_BASE_BIN")
# Where the servers' queues (and Maildirs) live: OUT, or the ext4 filesystem
# of their own that spoolfs.SpoolFs mounts (set by main()). Logs stay in LOGS,
# off that filesystem, so that no log write is dirty data a syncfs waits for.
WORK = OUT
LOGS = OUT / "logs"
SMTP_SOURCE = PFROOT / "usr/sbin/smtp-source"
SMTP_SINK = PFROOT / "usr/sbin/smtp-sink"
PF_ENV = dict(os.environ, LD_LIBRARY_PATH=str(PFROOT / "usr/lib/postfix"))

MSG_SIZE = 4096  # payload bytes per message (smtp-source -l)
LOCAL_RCPT = "user@local.test"  # delivered to Maildir by both servers
REMOTE_RCPT = "rcpt@example.com"  # relayed to smtp-sink by both servers
SENDER = "sender@client.example.com"

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Everything started here, stopped by cleanup() (atexit-like, and on signals).
_cleanups = []


def record_pid(pid):
    """bench/run.sh kills these process groups if bench.py dies."""
    with open(OUT / "pids", "a") as f:
        f.write("%d\n" % pid)


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_banner(port, timeout=20.0, proc=None):
    """True once 127.0.0.1:port answers with a 220 greeting (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def wait_progress(counter, target, timeout, stall, step=0.02):
    """Waits until counter() >= target; gives up after TIMEOUT, or after
    STALL seconds without progress (e.g. a server that does not deliver)."""
    deadline = time.monotonic() + timeout
    last, since = counter(), time.monotonic()
    while last < target:
        now = time.monotonic()
        if now >= deadline or now - since > stall:
            return False
        time.sleep(step)
        n = counter()
        if n != last:
            last, since = n, time.monotonic()
    return True


# ---------------------------------------------------------------- /proc accounting

def _proc_stat(pid):
    """(ppid, cpu_ticks incl. reaped children, rss_bytes) or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11.
    ppid = int(fields[1])
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    rss = int(fields[21]) * PAGE
    return ppid, ticks, rss


def tree_pids(root):
    """root and all its descendants, from a scan of /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st:
                children.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(root):
    """CPU seconds of the tree: utime+stime of the live processes plus
    cutime+cstime (the processes they already reaped). Differences of two
    readings give the CPU spent in between, children that came and went
    included."""
    total = 0
    for p in tree_pids(root):
        st = _proc_stat(p)
        if st:
            total += st[1]
    return total / CLK


def server_cpu(server):
    """CPU seconds the server has used: from its own cgroup when it was
    started in one (every process it ever had, exactly), else from /proc
    over its process tree."""
    if server.cgroup is not None:
        return server.cgroup.seconds()
    return tree_cpu(server.root_pid)


def tree_mem(root):
    """(sum of RSS, sum of PSS, process count) in bytes over the tree. RSS
    counts shared pages once per process (Postfix's many processes share
    their libraries); PSS divides shared pages among their users."""
    rss = pss = n = 0
    for p in tree_pids(root):
        st = _proc_stat(p)
        if not st:
            continue
        n += 1
        rss += st[2]
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return rss, pss, n


class MemSampler:
    """Samples the tree's memory in a thread; keeps the peaks."""

    def __init__(self, root, interval=0.5):
        self.root, self.interval = root, interval
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        rss, pss, n = tree_mem(self.root)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_procs = max(self.peak_procs, n)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=5)
        self.sample()


# ---------------------------------------------------------------- load tools

def smtp_source(port, count, sessions, rcpt, timeout):
    """Runs Postfix's smtp-source: COUNT messages of MSG_SIZE bytes over
    SESSIONS parallel sessions, one new connection per message (as MX
    traffic arrives). Returns (seconds, ok, error text)."""
    cmd = [str(SMTP_SOURCE), "-l", str(MSG_SIZE), "-m", str(count), "-s", str(sessions),
           "-M", "client.example.com", "-f", SENDER, "-t", rcpt, "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=PF_ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.monotonic() - t0, False, "smtp-source timed out after %ds" % timeout
    dt = time.monotonic() - t0
    err = (r.stderr or "").strip().splitlines()
    return dt, r.returncode == 0, (err[-1] if err else "")


class Sink:
    """Postfix's smtp-sink on a high port, counting messages (-c)."""

    def __init__(self, name):
        self.port = free_port()
        self.out = OUT / ("sink-%s.out" % name)
        self.proc = None

    def start(self):
        self.f = open(self.out, "wb")
        self.proc = subprocess.Popen(
            [str(SMTP_SINK), "-c", "-u", "nobody", "-m", "1000", "127.0.0.1:%d" % self.port, "1024"],
            env=PF_ENV, stdout=self.f, stderr=subprocess.STDOUT, start_new_session=True)
        record_pid(self.proc.pid)
        _cleanups.append(self.stop)
        if not wait_banner(self.port, proc=self.proc):
            raise RuntimeError("smtp-sink did not start")
        return self

    def count(self):
        """Messages received so far (the last "mesg=N" counter)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(max(0, os.path.getsize(self.out) - 400))
                tail = f.read().decode("ascii", "replace")
        except OSError:
            return 0
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ---------------------------------------------------------------- servers

def _count_files(dirs):
    n = 0
    for d in dirs:
        for _, _, files in os.walk(d):
            n += len(files)
    return n


class Postfix:
    """A private Postfix instance: its own config_directory, queue_directory
    and data_directory under bench/out, smtpd on a high loopback port,
    chroot off (nothing to copy in), logging to maillog_file (no syslog).
    Local domain local.test delivered by virtual(8) to Maildir; everything
    else to relayhost = [127.0.0.1]:SINK. cleanup(8) fsyncs each queue file
    before smtpd answers 250, as always."""

    def __init__(self, work, sink_port, smtpd_process_limit=None, extra=None, cgroup=None,
                 name="postfix"):
        self.work = pathlib.Path(work)
        self.name = name
        self.port = free_port()
        self.sink_port = sink_port
        self.limit = smtpd_process_limit
        self.extra = extra or {}  # main.cf settings on top of ours; None removes one
        self.cgroup = cgroup
        self.conf = self.work / "conf"
        self.queue = self.work / "queue"
        self.mail = self.work / "mail"
        self.maillog = LOGS / (self.work.name + ".maillog")
        self.master_pid = None

    def setup(self):
        if self.work.exists():
            shutil.rmtree(self.work)
        # A fresh log per instance: the latency scenario reads its delays from it.
        if self.maillog.exists():
            self.maillog.unlink()
        for d in (self.conf, self.queue, self.work / "data", self.mail):
            d.mkdir(parents=True)
        shutil.chown(self.work / "data", "postfix")
        shutil.chown(self.mail, "postfix", "postfix")
        shutil.copy(PFROOT / "etc/postfix/postfix-files", self.conf)
        shutil.copytree(PFROOT / "etc/postfix/postfix-files.d", self.conf / "postfix-files.d")
        shutil.copy(PFROOT / "usr/share/postfix/dynamicmaps.cf", self.conf)
        (self.conf / "dynamicmaps.cf.d").mkdir()
        # master.cf: Debian's, with chroot off and smtpd on our port only.
        lines = []
        limit = str(self.limit) if self.limit else "-"
        for line in (PFROOT / "usr/share/postfix/master.cf.dist").read_text().splitlines():
            f = line.split()
            if line and not line[0].isspace() and not line.startswith("#") and len(f) >= 8:
                if f[0] == "smtp" and f[1] == "inet":
                    line = "127.0.0.1:%d inet n - n - %s smtpd" % (self.port, limit)
                elif f[4] == "y":
                    f[4] = "n"
                    line = "  ".join(f)
            lines.append(line)
        (self.conf / "master.cf").write_text("\n".join(lines) + "\n")
        import pwd
        pw = pwd.getpwnam("postfix")
        w = str(self.work)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": w + "/data",
            "daemon_directory": str(PFROOT / "usr/lib/postfix/sbin"),
            "command_directory": str(PFROOT / "usr/sbin"),
            "shlib_directory": str(PFROOT / "usr/lib/postfix"),
            "meta_directory": str(self.conf),
            "manpage_directory": str(PFROOT / "usr/share/man"),
            "sendmail_path": str(PFROOT / "usr/sbin/sendmail"),
            "newaliases_path": str(PFROOT / "usr/bin/newaliases"),
            "mailq_path": str(PFROOT / "usr/bin/mailq"),
            # The binaries find their libraries through LD_LIBRARY_PATH;
            # master passes only what import_environment lists.
            "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C "
                                  "POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "pf.bench.test",
            "mydomain": "bench.test",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": "local.test",
            "virtual_mailbox_base": str(self.mail),
            "virtual_mailbox_maps": "inline:{ %s=local.test/user/ }" % LOCAL_RCPT,
            "virtual_uid_maps": "static:%d" % pw.pw_uid,
            "virtual_gid_maps": "static:%d" % pw.pw_gid,
            "relayhost": "[127.0.0.1]:%d" % self.sink_port,
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": make_cert()[0],
            "smtpd_tls_key_file": make_cert()[1],
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(LOGS),
            "smtputf8_enable": "no",
        }
        settings.update(self.extra)
        settings = {k: v for k, v in settings.items() if v is not None}
        (self.conf / "main.cf").write_text("".join("%s = %s\n" % kv for kv in settings.items()))

    def _postfix(self, *args, timeout=60, prefix=()):
        return subprocess.run(list(prefix) + [str(PFROOT / "usr/sbin/postfix"), "-c", str(self.conf)]
                              + list(args), env=PF_ENV, capture_output=True, text=True, timeout=timeout)

    def start(self):
        self.setup()
        LOGS.mkdir(parents=True, exist_ok=True)
        _cleanups.append(self.stop)
        # Started inside its cgroup, master and every process it forks are counted there.
        r = self._postfix("start", prefix=self.cgroup.prefix() if self.cgroup else ())
        pidfile = self.queue / "pid/master.pid"
        if r.returncode != 0 or not wait_until(pidfile.exists, 10):
            raise RuntimeError("postfix start failed: %s; see %s"
                               % (" ".join((r.stdout + r.stderr).split())[-300:], self.maillog))
        self.master_pid = int(pidfile.read_text().split()[0])
        if not wait_banner(self.port):
            raise RuntimeError("postfix smtpd does not answer; see %s" % self.maillog)
        return self

    @property
    def root_pid(self):
        return self.master_pid

    def cpu(self):
        return server_cpu(self)

    def stop(self):
        if self.master_pid is None:
            return
        pids = tree_pids(self.master_pid)
        try:
            self._postfix("stop", timeout=30)
        except subprocess.TimeoutExpired:
            pass
        if not wait_until(lambda: not os.path.exists("/proc/%d" % self.master_pid), 15, 0.1):
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # Children that outlived master (they exit on their own; be sure).
        for p in pids:
            try:
                os.kill(p, 0)
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.master_pid = None

    def queued(self):
        return _count_files([self.queue / d for d in ("incoming", "active", "deferred", "maildrop", "hold")])

    def maildir_new(self):
        return self.mail / "local.test/user/new"

    def version(self):
        v = PFROOT / "VERSION"
        return "Postfix " + (v.read_text().strip() if v.exists() else "?")

    def durability(self):
        return "cleanup(8) fsync of the queue file before 250; virtual(8) fsync of the Maildir file"


class Hongyan:
    """hongyan serve with its own main.cf under bench/out: local.test
    delivered to Maildir, everything else to relayhost = [127.0.0.1]:SINK.
    Started as root it drops to mail_owner (hongyan), as Postfix does."""

    def __init__(self, work, sink_port, extra=None, cgroup=None, name="hongyan", binary=None):
        self.work = pathlib.Path(work)
        self.name = name
        self.binary = pathlib.Path(binary or HONGYAN)
        self.port = free_port()
        self.sink_port = sink_port
        self.extra = extra or {}  # settings on top of ours; None removes one
        self.cgroup = cgroup
        self.data = self.work / "data"
        self.mail = self.data / "mail"
        self.cfg = self.work / "main.cf"
        self.maillog = LOGS / (self.work.name + ".maillog")
        self.proc = None
        # A loopback port where nothing listens: any DNS query hongyan makes
        # (it should make none here) fails at once instead of leaving the host.
        self.dns_port = free_port()

    def setup(self):
        if self.work.exists():
            shutil.rmtree(self.work)
        if self.maillog.exists():  # a fresh log per instance, as for Postfix
            self.maillog.unlink()
        self.work.mkdir(parents=True)
        settings = {
            "myhostname": "hy.bench.test",
            "mydomain": "bench.test",
            "mydestination": "",
            "data_directory": str(self.data),
            "smtpd_listen": "127.0.0.1:%d" % self.port,
            "submission_listen": "127.0.0.1:%d" % free_port(),
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": "local.test",
            "virtual_mailbox_maps": "inline:{ %s=local.test/user/ }" % LOCAL_RCPT,
            "relayhost": "[127.0.0.1]:%d" % self.sink_port,
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": make_cert()[0],
            "smtpd_tls_key_file": make_cert()[1],
            "maillog_file": str(self.maillog),
            "dns_resolver": "127.0.0.1:%d" % self.dns_port,
            # All load comes from 127.0.0.1: lift the per-client cap (Postfix
            # exempts $mynetworks from its equivalent) and the total cap above
            # the 10,000 idle sessions.
            "smtpd_client_connection_count_limit": "20000",
            "smtpd_client_connection_limit": "20000",
            # Postfix out of the box checks no DKIM/SPF; neither do we here.
            "smtpd_dkim_verify": "no",
        }
        settings.update(self.extra)
        settings = {k: v for k, v in settings.items() if v is not None}
        self.cfg.write_text("".join("%s = %s\n" % kv for kv in settings.items()))

    def start(self):
        if not self.binary.exists():
            raise RuntimeError("%s not built" % self.binary)
        self.setup()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.logf = open(LOGS / (self.work.name + ".stderr"), "ab")
        prefix = self.cgroup.prefix() if self.cgroup else []
        self.proc = subprocess.Popen(prefix + [str(self.binary), "-c", str(self.cfg), "serve"],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        record_pid(self.proc.pid)
        _cleanups.append(self.stop)
        if not wait_banner(self.port, proc=self.proc):
            self.stop()
            raise RuntimeError("hongyan serve gave no 220 greeting on 127.0.0.1:%d (see %s)"
                               % (self.port, LOGS / (self.work.name + ".stderr")))
        return self

    @property
    def root_pid(self):
        return self.proc.pid

    def cpu(self):
        return server_cpu(self)

    def stop(self):
        if self.proc is None:
            return
        pids = tree_pids(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for p in pids + [self.proc.pid]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def queued(self):
        q = self.data / "queue"
        return _count_files([q / d for d in ("incoming", "active", "maildrop", "hold")])

    def maildir_new(self):
        return self.mail / "local.test/user/new"

    def version(self):
        try:
            r = subprocess.run([str(self.binary), "version"], capture_output=True, text=True, timeout=10)
            v = r.stdout.strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            v = "?"
        try:
            # The commit of the source tree the binary was built in (build/hongyan).
            c = subprocess.run(["git", "-C", str(self.binary.resolve().parents[1]), "rev-parse",
                                "--short", "HEAD"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            c = "?"
        return "%s (commit %s)" % (v, c)

    def durability(self):
        return "spool commit: fsync of file, rename, fsync of directory before 250 (group commit)"


def maildir_count(d):
    try:
        return len(os.listdir(d))
    except OSError:
        return 0


def clear_maildir(d):
    try:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
    except OSError:
        pass


# ---------------------------------------------------------------- scenarios

def settle_queue(server, timeout=30):
    """Waits (bounded) for the queue to drain or stop shrinking; returns the
    number of files left, the baseline for the next run (a scenario that
    failed may leave messages behind; they must not spoil the next one)."""
    last, since = server.queued(), time.monotonic()
    deadline = since + timeout
    while last and time.monotonic() < deadline and time.monotonic() - since < 3:
        time.sleep(0.2)
        n = server.queued()
        if n < last:
            last, since = n, time.monotonic()
    return last


def scenario_sink(sessions, count):
    """smtp-source straight into smtp-sink: the protocol ceiling."""
    sink = Sink("ceiling-%d" % sessions).start()
    try:
        dt, ok, err = smtp_source(sink.port, count, sessions, REMOTE_RCPT, timeout=120)
        wait_until(lambda: sink.count() >= count, 5)
        got = sink.count()
    finally:
        sink.stop()
    return {"rate": count / dt if ok else None, "seconds": dt, "ok": ok and got >= count,
            "error": err if not ok else ("sink counted %d" % got if got < count else "")}


def scenario_accept(server, sessions, count):
    """COUNT 4 KB messages to the local domain over SESSIONS parallel
    sessions. Rate = COUNT / time until smtp-source has every 250 (each one
    given after fsync). CPU = the server's whole process tree from the first
    connection until the last message is in the Maildir (acceptance and
    local delivery both), per 1,000 messages."""
    newdir = server.maildir_new()
    clear_maildir(newdir)
    q0 = settle_queue(server)
    root = server.root_pid
    cpu0 = server.cpu()
    with MemSampler(root) as mem:
        dt, ok, err = smtp_source(server.port, count, sessions, LOCAL_RCPT,
                                  timeout=max(120, count // 10))
        t_acc = time.monotonic()
        delivered = (wait_progress(lambda: maildir_count(newdir), count, max(60, count // 20), stall=20)
                     and wait_until(lambda: server.queued() <= q0, 30, 0.05))
        t_all = time.monotonic() - t_acc + dt
    cpu = server.cpu() - cpu0
    got = maildir_count(newdir)
    res = {"rate": count / dt if ok else None, "seconds": dt, "ok": ok and delivered,
           "delivered_rate": count / t_all if delivered else None,
           "cpu_s": cpu, "cpu_per_1000": cpu / count * 1000,
           "peak_rss": mem.peak_rss, "peak_pss": mem.peak_pss, "peak_procs": mem.peak_procs,
           "in_maildir": got}
    if not ok:
        res["error"] = err
    elif not delivered:
        res["error"] = "only %d of %d in Maildir, %d files still queued" % (got, count, server.queued() - q0)
    clear_maildir(newdir)
    return res


def scenario_relay(server, sink, sessions, count):
    """COUNT 4 KB messages for a remote domain; the server relays them to
    smtp-sink. Rate = COUNT / time from the first connection until the sink
    has received the last one (end to end)."""
    q0 = settle_queue(server)
    root = server.root_pid
    c0 = sink.count()
    cpu0 = server.cpu()
    t0 = time.monotonic()
    with MemSampler(root) as mem:
        dt, ok, err = smtp_source(server.port, count, sessions, REMOTE_RCPT,
                                  timeout=max(120, count // 10))
        done = wait_progress(lambda: sink.count() - c0, count, max(60, count // 20), stall=20)
        t_e2e = time.monotonic() - t0
    cpu = server.cpu() - cpu0
    got = sink.count() - c0
    res = {"rate": count / t_e2e if done else None, "accept_rate": count / dt if ok else None,
           "seconds": t_e2e, "ok": ok and done, "cpu_per_1000": cpu / count * 1000,
           "peak_rss": mem.peak_rss, "peak_pss": mem.peak_pss, "at_sink": got}
    if not ok:
        res["error"] = err
    elif not done:
        res["error"] = "sink got %d of %d, %d files still queued" % (got, count, server.queued() - q0)
    wait_until(lambda: server.queued() <= q0, 30, 0.2)
    return res


async def _hold_idle(port, n, connect_concurrency=500, connect_timeout=2.0,
                     stall=15.0, deadline=240.0):
    """Opens up to N sessions (connect, read the 220, EHLO, read the 250)
    and keeps them open. Waits for greetings until every session is answered,
    or nothing has progressed for STALL seconds (a server that queues
    connections it cannot serve), or DEADLINE. Returns (stats, sessions)."""
    stats = {"connected": 0, "connect_failed": 0, "greeted": 0, "ehlo_ok": 0,
             "refused_reply": 0, "closed": 0}
    sessions = []
    sem = asyncio.Semaphore(connect_concurrency)

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                              connect_timeout)
            except (OSError, asyncio.TimeoutError):
                stats["connect_failed"] += 1
                return
        stats["connected"] += 1
        sessions.append((r, w))
        try:
            line = await r.readline()
            if not line:
                stats["closed"] += 1
                return
            if not line.startswith(b"220"):
                stats["refused_reply"] += 1
                return
            stats["greeted"] += 1
            w.write(b"EHLO idle.example.com\r\n")
            while True:
                line = await r.readline()
                if not line or not line.startswith(b"250"):
                    stats["refused_reply"] += 1
                    return
                if line[3:4] == b" ":
                    stats["ehlo_ok"] += 1
                    return
        except OSError:
            stats["closed"] += 1

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    t0 = time.monotonic()
    last, last_change = None, time.monotonic()
    while True:
        done = all(t.done() for t in tasks)
        now = time.monotonic()
        progress = (stats["connected"], stats["connect_failed"], stats["greeted"], stats["ehlo_ok"])
        if progress != last:
            last, last_change = progress, now
        if done:
            break
        if now - last_change > stall:
            stats["stalled"] = True
            break
        if now - t0 > deadline:
            stats["deadline_hit"] = True
            break
        await asyncio.sleep(0.5)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stats["ramp_seconds"] = round(last_change - t0, 1)
    return stats, sessions


def scenario_idle(server, n=10000):
    """N concurrent idle sessions (greeted, EHLO answered, then silent):
    the server tree's memory while they are held."""
    root = server.root_pid
    base_rss, base_pss, _ = tree_mem(root)
    t0 = time.monotonic()

    async def run():
        stats, sessions = await _hold_idle(server.port, n)
        await asyncio.sleep(2)
        rss, pss, procs = tree_mem(root)
        still_open = sum(1 for r, w in sessions if not r.at_eof())
        for _, w in sessions:
            w.close()
        await asyncio.sleep(0.5)
        return stats, rss, pss, procs, still_open

    stats, rss, pss, procs, still_open = asyncio.run(run())
    res = dict(stats)
    res.update({"asked": n, "held_open": still_open, "rss": rss, "pss": pss, "procs": procs,
                "base_rss": base_rss, "base_pss": base_pss, "seconds": time.monotonic() - t0,
                "ok": stats["ehlo_ok"] >= n})
    # Let the server notice the closed sessions before the next scenario.
    time.sleep(3)
    return res


SYNC_CALLS = ("fsync", "fdatasync", "sync_file_range", "syncfs", "sync", "msync")


def scenario_durability(server, count=200, sessions=20):
    """Not timed: counts the sync system calls the server's process tree
    makes per accepted-and-delivered message (strace -f -c on every thread
    of the tree), to show both servers do the same durable work."""
    if not shutil.which("strace"):
        return {"ok": None, "error": "strace not installed"}
    newdir = server.maildir_new()
    clear_maildir(newdir)
    q0 = settle_queue(server)
    tids = []
    for p in tree_pids(server.root_pid):
        try:
            tids += [int(t) for t in os.listdir("/proc/%d/task" % p)]
        except OSError:
            pass
    out = OUT / ("strace-%s.txt" % server.name)
    cmd = ["strace", "-f", "-c", "-o", str(out), "-e", "trace=" + ",".join(SYNC_CALLS)]
    for t in tids:
        cmd += ["-p", str(t)]
    st = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    record_pid(st.pid)
    _cleanups.append(lambda: st.poll() is None and st.kill())
    try:
        time.sleep(1.0)  # strace attaches
        dt, ok, err = smtp_source(server.port, count, sessions, LOCAL_RCPT, timeout=300)
        delivered = wait_until(lambda: maildir_count(newdir) >= count and server.queued() <= q0, 120, 0.1)
    finally:
        st.send_signal(signal.SIGINT)
        try:
            st.wait(timeout=30)
        except subprocess.TimeoutExpired:
            st.kill()
    calls = {}
    try:
        for line in out.read_text().splitlines():
            f = line.split()
            if len(f) >= 5 and f[-1] in SYNC_CALLS and f[3].isdigit():
                calls[f[-1]] = int(f[3])
    except OSError:
        pass
    clear_maildir(newdir)
    total = sum(calls.values())
    res = {"ok": ok and delivered, "count": count, "calls": calls, "per_message": total / count}
    if not (ok and delivered):
        res["error"] = err or "not all delivered under strace"
    return res


def make_cert():
    """A self-signed RSA-2048 certificate both servers present for STARTTLS
    (Debian's Postfix ships with TLS on and a snakeoil certificate; hongyan
    makes a self-signed one: both offer STARTTLS in every scenario)."""
    d = OUT / "tls"
    cert, key = d / "cert.pem", d / "key.pem"
    if not cert.exists():
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                        "-subj", "/CN=bench.test", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o644)  # both servers read it after dropping privileges
    return str(cert), str(key)


def _starttls_once(port, ctx, timeout=20.0):
    """One session: 220, EHLO, STARTTLS, full handshake, QUIT. True on success."""
    import ssl
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        f = raw.makefile("rb")
        if not f.readline().startswith(b"220"):
            return False
        raw.sendall(b"EHLO tls.example.com\r\n")
        starttls = False
        while True:
            line = f.readline()
            if not line.startswith(b"250"):
                return False
            starttls |= b"STARTTLS" in line.upper()
            if line[3:4] == b" ":
                break
        if not starttls:
            raise RuntimeError("STARTTLS not offered")
        raw.sendall(b"STARTTLS\r\n")
        if not f.readline().startswith(b"220"):
            return False
        with ctx.wrap_socket(raw, server_hostname="bench.test") as t:
            t.sendall(b"QUIT\r\n")
            try:
                t.recv(512)
            except (OSError, ssl.SSLError):
                pass
        return True


def scenario_tls(server, count=600, threads=8, hold=500):
    """Issue 4: STARTTLS handshakes/s (full handshakes, no resumption: every
    session gets a fresh context-less session), over THREADS client threads
    (Python's ssl releases the GIL during the handshake), and the server's
    memory per established idle TLS session (HOLD sessions)."""
    import ssl
    ctx = tls_client_context()
    res = {}
    root = server.root_pid
    # Memory per idle TLS session, first, on the fresh server.
    time.sleep(1)
    base = tree_mem(root)

    async def hold_tls():
        held = []
        sem = asyncio.Semaphore(50)

        async def one():
            async with sem:
                try:
                    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 5)
                    held.append(w)
                    await asyncio.wait_for(r.readline(), 20)
                    w.write(b"EHLO tls.example.com\r\n")
                    while True:
                        line = await asyncio.wait_for(r.readline(), 20)
                        if not line.startswith(b"250") or line[3:4] == b" ":
                            break
                    w.write(b"STARTTLS\r\n")
                    if not (await asyncio.wait_for(r.readline(), 20)).startswith(b"220"):
                        return 0
                    await asyncio.wait_for(w.start_tls(ctx, server_hostname="bench.test"), 20)
                    return 1
                except (OSError, asyncio.TimeoutError, ssl.SSLError):
                    return 0

        n = sum(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(hold))), 200))
        await asyncio.sleep(2)
        mem = tree_mem(root)
        for w in held:
            w.close()
        return n, mem

    try:
        n, mem = asyncio.run(hold_tls())
    except asyncio.TimeoutError:
        n, mem = 0, base
    res.update({"held": n, "pss_per_session": (mem[1] - base[1]) / n if n else None,
                "rss": mem[0], "pss": mem[1], "procs": mem[2]})
    time.sleep(2)
    res.update(tls_rate(server, count, threads))
    res["ok"] = res.pop("all_done") and res.get("held") == hold
    time.sleep(2)
    return res


def tls_client_context():
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def tls_rate(server, count, threads):
    """COUNT full STARTTLS handshakes over THREADS client threads: their rate
    and the server's CPU per 1,000."""
    from concurrent.futures import ThreadPoolExecutor
    ctx = tls_client_context()
    res = {}
    cpu0 = server.cpu()
    t0 = time.monotonic()
    errors = []

    def worker(n):
        ok = 0
        for _ in range(n):
            if time.monotonic() - t0 > 180:
                break
            try:
                ok += bool(_starttls_once(server.port, ctx))
            except Exception as e:  # record, keep going (bounded by count)
                errors.append(str(e))
                if "not offered" in str(e):
                    break
        return ok

    with ThreadPoolExecutor(threads) as ex:
        done = sum(ex.map(worker, [count // threads] * threads))
    dt = time.monotonic() - t0
    cpu = server.cpu() - cpu0
    res.update({"handshakes": done, "rate": done / dt if done else None,
                "cpu_per_1000": cpu / done * 1000 if done else None,
                "all_done": done == (count // threads) * threads})
    if errors:
        res["error"] = "%d failed sessions, e.g. %s" % (len(errors), errors[0])
    return res


def _dkim_message():
    body = "".join("line %04d of a benchmark message body, some text to sign.\r\n" % i
                   for i in range(MSG_SIZE // 60))
    return ("From: Sender <sender@bench.test>\r\nTo: rcpt@example.com\r\n"
            "Subject: dkim bench\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            "Message-ID: <bench@bench.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain\r\n\r\n" + body).encode()


def _dkim_txt(key, alg):
    """The DKIM key record (RFC 6376 3.6.1, RFC 8463 4.2) for the PEM private KEY."""
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True, timeout=30).stdout
    if alg == "ed25519":  # p= is the raw 32-byte public key, not the SubjectPublicKeyInfo
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def _netns_jobs(work, keys, jobs, n, rounds, timeout):
    """Runs JOBS through bench/dkim_netns.py in a private network and mount
    namespace (DNS for KEYS on its 127.0.0.1:53). {name: timing} or raises."""
    spec = work / ("spec-%d.json" % n)
    spec.write_text(json.dumps({"keys": keys, "jobs": jobs, "n": n, "rounds": rounds,
                                "timeout": timeout}))
    r = subprocess.run(["unshare", "--net", "--mount", "/usr/bin/python3",
                        str(ROOT / "bench" / "dkim_netns.py"), str(spec)],
                       capture_output=True, timeout=timeout + 60)
    if r.returncode != 0:
        raise RuntimeError("dkim_netns.py: exit %d: %s" % (
            r.returncode, (r.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]))
    return json.loads(r.stdout)


def _sem(xs):
    """Standard error of the mean of XS (0 for fewer than two values)."""
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def scenario_dkim(n=200, rounds=None):
    """Issue 5: DKIM signatures/s and verifications/s, hongyan against
    opendkim-testmsg (libopendkim), same keys, same 4 KB message, one process
    per operation on both sides (so process start-up is in both). Verification
    asks a dnslib server on the loopback of a private network namespace (see
    bench/dkim_netns.py). Besides the rates: CPU per operation, and CPU per
    operation above each tool's start-up baseline (the same process run on
    the same message unsigned: start-up, configuration, reading and parsing
    the message, but no key, no hashing, no public-key operation)."""
    if rounds is None:
        rounds = max(1, n // 10)  # runs of 10, interleaved: load drift falls on every job alike
    work = OUT / "dkim"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    hy = str(HONGYAN)
    unsigned = work / "unsigned.eml"
    unsigned.write_bytes(_dkim_message())
    keys, jobs, res = {}, [], {"sign": {}, "verify": {}, "baseline": {}, "lookup": {},
                                "notes": [], "n": n}
    if not HONGYAN.exists():
        res["notes"].append("hongyan not built")
        return res
    algs = (("rsa-2048", "rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
            ("ed25519", "ed", ["-algorithm", "ED25519"]))
    cfg = {}
    for alg, sel, genargs in algs:
        kdir = work / alg / "keys"
        (kdir / "bench.test").mkdir(parents=True)
        key = kdir / "bench.test" / (sel + ".pem")
        subprocess.run(["openssl", "genpkey"] + genargs + ["-out", str(key)], check=True,
                       capture_output=True, timeout=60)
        keys["%s._domainkey.bench.test" % sel] = _dkim_txt(key, alg)
        cfg[alg] = work / alg / "main.cf"
        cfg[alg].write_text("mydomain = bench.test\nmyhostname = hy.bench.test\n"
                            "data_directory = %s\ndkim_key_directory = %s\ndkim_domains = bench.test\n"
                            "dns_resolver = 127.0.0.1\n" % (work / alg, kdir))
        # Signed once up front: every verifier reads these same bytes.
        r = subprocess.run([hy, "-c", str(cfg[alg]), "dkim", "sign"], input=unsigned.read_bytes(),
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            res["notes"].append("%s: hongyan dkim sign failed: %s" % (alg, r.stderr.decode(errors="replace").strip()))
            continue
        signed = work / ("signed-%s.eml" % alg)
        signed.write_bytes(r.stdout)
        jobs.append({"name": "sign/%s/hongyan" % alg, "cmd": [hy, "-c", str(cfg[alg]), "dkim", "sign"],
                     "input": str(unsigned), "expect_rc": 0, "expect_out": "DKIM-Signature:"})
        if alg == "rsa-2048":
            # No algorithm option: opendkim-testmsg signs with libopendkim's
            # default, rsa-sha1 (c=relaxed/simple); see the README.
            jobs.append({"name": "sign/%s/opendkim" % alg,
                         "cmd": ["opendkim-testmsg", "-d", "bench.test", "-s", sel, "-k", str(key),
                                 "-t", str(work)],
                         "input": str(unsigned), "expect_rc": 0, "expect_out": "DKIM-Signature:"})
        jobs.append({"name": "verify/%s/hongyan" % alg, "cmd": [hy, "-c", str(cfg[alg]), "dkim", "verify"],
                     "input": str(signed), "expect_rc": 0, "expect_out": "pass d=bench.test"})
        jobs.append({"name": "verify/%s/opendkim" % alg, "cmd": ["opendkim-testmsg"],
                     "input": str(signed), "expect_rc": 0})
    # Start-up baselines: the unsigned message (no key, no hashing, no
    # public-key operation). Key-lookup baselines: the RSA-signed message with
    # its selector changed to one that has no key record (start-up, parsing,
    # resolver set-up and one DNS query answered NXDOMAIN; no signature check).
    nokey = work / "nokey.eml"
    if (work / "signed-rsa-2048.eml").exists():
        nokey.write_bytes((work / "signed-rsa-2048.eml").read_bytes().replace(b" s=rsa;", b" s=nokey;", 1))
    baselines = [
        {"name": "baseline/hongyan version", "cmd": [hy, "version"], "input": str(unsigned), "expect_rc": 0},
        {"name": "baseline/hongyan", "cmd": [hy, "-c", str(cfg["rsa-2048"]), "dkim", "verify"],
         "input": str(unsigned), "expect_rc": 1, "expect_out": "none"},
        {"name": "baseline/opendkim", "cmd": ["opendkim-testmsg"], "input": str(unsigned), "expect_rc": None},
    ]
    if nokey.exists():
        baselines += [
            {"name": "lookup/hongyan", "cmd": [hy, "-c", str(cfg["rsa-2048"]), "dkim", "verify"],
             "input": str(nokey), "expect_rc": "nonzero", "expect_out": "no key"},
            {"name": "lookup/opendkim", "cmd": ["opendkim-testmsg"], "input": str(nokey), "expect_rc": "nonzero"},
        ]
    # Both verifiers must refuse a changed body, or their rate means nothing.
    tamper = []
    for j in jobs:
        if j["name"].startswith("verify/"):
            bad = work / ("tampered-%s.eml" % j["name"].split("/")[1])
            bad.write_bytes(pathlib.Path(j["input"]).read_bytes().replace(b"line 0003", b"line 9993", 1))
            tamper.append(dict(j, name="tamper/" + j["name"], input=str(bad), expect_rc="nonzero",
                               expect_out=None))
    try:
        # One untimed pass: every job must do what it should (a verifier that
        # fails fast would look fast); opendkim's Ed25519 verification is
        # dropped here if this libopendkim cannot do it, with its message.
        probe = _netns_jobs(work, keys, jobs + baselines + tamper, 1, 1, 120)
        for j in list(jobs) + list(baselines):
            err = probe[j["name"]]["error"] or probe.get("tamper/" + j["name"], {}).get("error")
            if err:
                (jobs if j in jobs else baselines).remove(j)
                res["notes"].append("%s: %s" % (j["name"], err))
        t = _netns_jobs(work, keys, jobs + baselines, n, rounds, 900)
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        res["notes"].append("not measured: %s" % e)
        return res
    for name, r in t.items():
        kind, rest = name.split("/", 1)
        row = {"runs": r["runs"], "error": r["error"]}
        if r["runs"] and not r["error"]:
            row.update(rate=r["runs"] / r["wall"], wall_ms=1000 * r["wall"] / r["runs"],
                       cpu_ms=1000 * r["cpu"] / r["runs"], cpu_sem_ms=1000 * _sem(r["cpus"]))
        elif r["error"]:
            res["notes"].append("%s: %s" % (name, r["error"]))
        if kind in ("baseline", "lookup"):
            res[kind][rest] = row
        else:
            alg, tool = rest.split("/")
            res[kind].setdefault(alg, {})[tool] = row
    for kind in ("sign", "verify"):
        for alg, by in res[kind].items():
            for tool, row in by.items():
                base = res["baseline"].get(tool, {})
                if row.get("cpu_ms") is not None and base.get("cpu_ms") is not None:
                    row["cpu_above_ms"] = row["cpu_ms"] - base["cpu_ms"]
                    row["cpu_above_err_ms"] = math.hypot(row["cpu_sem_ms"], base["cpu_sem_ms"])
                    row["wall_above_ms"] = row["wall_ms"] - base["wall_ms"]
                look = res["lookup"].get(tool, {})
                if kind == "verify" and row.get("cpu_ms") is not None and look.get("cpu_ms") is not None:
                    row["cpu_above_lookup_ms"] = row["cpu_ms"] - look["cpu_ms"]
                    row["cpu_above_lookup_err_ms"] = math.hypot(row["cpu_sem_ms"], look["cpu_sem_ms"])
    return res


# ---------------------------------------------------------------- report

def fmt_rate(v):
    return "%.0f" % v if v else "—"


def fmt_mb(v):
    return "%.1f" % (v / 1e6) if v else "—"


def ratio(a, b, invert=False):
    if not a or not b:
        return "—"
    return "%.2fx" % ((b / a) if invert else (a / b))


# A run is quiet when other work took at most this share of the machine's CPU.
QUIET_SHARE = 0.10


def render(results, meta):
    L = []
    L.append("# hongyan benchmark results")
    L.append("")
    L.append("%s · %s · %d cores · %s" % (meta["date"], meta["host"], meta["cores"], meta["kernel"]))
    L.append("")
    L.append("- hongyan: %s" % meta.get("hongyan", "—"))
    if meta.get("hongyan-base"):
        L.append("- hongyan-base (the \"before\" binary): %s" % meta["hongyan-base"])
    L.append("- Postfix: %s" % meta.get("postfix", "—"))
    L.append("- queues (and Maildirs) on: %s" % meta.get("spool", "—"))
    L.append("- load: smtp-source, %d-byte messages, one new connection per message" % MSG_SIZE)
    cpu = meta.get("cpu")
    if cpu:
        # Other work: the machine's busy time outside the bench's cgroup (lean.BenchCpu).
        L.append("- other work on the machine during the run: %.1f%% of its CPU (%.0f CPU-s outside "
                 "the bench's processes, the kernel's I/O threads included, against %.0f CPU-s of "
                 "the bench's own, over %.0f s on %d cores)%s" % (
                     100 * cpu["others_share"], cpu["others"], cpu["bench"], cpu["wall"], meta["cores"],
                     " — busy: treat the numbers as rough" if cpu["others_share"] > QUIET_SHARE
                     else " — a quiet run"))
        L.append("- load average (1 min) at start / end: %s / %s (the load average counts tasks waiting "
                 "for the spool's disk, so the bench's own load raises it: not a measure of other work)"
                 % (meta.get("load_start", "?"), meta.get("load_end", "?")))
    else:
        # No cgroup here (or a run from before the measure): the load average is all there is.
        L.append("- load average (1 min) at start / end: %s / %s (no measure of other work in this "
                 "run; the load average counts the bench's own waits for the spool's disk too)"
                 % (meta.get("load_start", "?"), meta.get("load_end", "?")))
    L.append("")
    # The lean sections first: issue 13's goal is judged on them.
    import lean
    lean.render(results, L)
    acc = results.get("accept", {})
    sink = results.get("sink", {})
    if acc or sink:
        L.append("## Acceptance (local domain, Maildir delivery): messages/s accepted durably")
        L.append("")
        L.append("| sessions | smtp-sink | Postfix | hongyan | hongyan / Postfix | Postfix CPU s/1000 | "
                 "hongyan CPU s/1000 | Postfix CPU / hongyan CPU | Postfix peak RSS / PSS MB | "
                 "hongyan peak RSS / PSS MB |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in sorted(set(list(acc.get("postfix", {}).keys()) + list(acc.get("hongyan", {}).keys())
                            + list(sink.keys())), key=int):
            p = acc.get("postfix", {}).get(s, {})
            h = acc.get("hongyan", {}).get(s, {})
            k = sink.get(s, {})
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
                s, fmt_rate(k.get("rate")), fmt_rate(p.get("rate")), fmt_rate(h.get("rate")),
                ratio(h.get("rate"), p.get("rate")),
                "%.2f" % p["cpu_per_1000"] if p.get("ok") else "—",
                "%.2f" % h["cpu_per_1000"] if h.get("ok") else "—",
                ratio(p.get("cpu_per_1000") if p.get("ok") else None,
                      h.get("cpu_per_1000") if h.get("ok") else None),
                fmt_mb(p.get("peak_rss")), fmt_mb(p.get("peak_pss")),
                fmt_mb(h.get("peak_rss")), fmt_mb(h.get("peak_pss"))))
        L.append("")
    rel = results.get("relay", {})
    if rel:
        L.append("## Relay to smtp-sink, end to end (acceptance to the sink's 250): messages/s")
        L.append("")
        L.append("| sessions | Postfix | hongyan | hongyan / Postfix | Postfix CPU s/1000 | hongyan CPU s/1000 |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for s in sorted(set(list(rel.get("postfix", {}).keys()) + list(rel.get("hongyan", {}).keys())), key=int):
            p = rel.get("postfix", {}).get(s, {})
            h = rel.get("hongyan", {}).get(s, {})
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                s, fmt_rate(p.get("rate")), fmt_rate(h.get("rate")), ratio(h.get("rate"), p.get("rate")),
                "%.2f" % p["cpu_per_1000"] if p.get("ok") else "—",
                "%.2f" % h["cpu_per_1000"] if h.get("ok") else "—"))
        L.append("")
    idle = results.get("idle", {})
    if idle:
        L.append("## Concurrent idle sessions (greeted, EHLO answered, then silent)")
        L.append("")
        L.append("| server | asked | EHLO answered | TCP connected | connect failed | open at measurement | "
                 "seconds to last answer | server RSS MB | server PSS MB | PSS KB per answered session | processes |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in idle.items():
            if "asked" not in r:
                L.append("| %s |" % name + " — |" * 10)
                continue
            per = ("%.0f" % ((r["pss"] - r["base_pss"]) / r["ehlo_ok"] / 1024)) if r["ehlo_ok"] else "—"
            L.append("| %s | %d | %d | %d | %d | %d | %s | %s | %s | %s | %d |" % (
                name, r["asked"], r["ehlo_ok"], r["connected"], r["connect_failed"], r["held_open"],
                r.get("ramp_seconds", "—"), fmt_mb(r["rss"]), fmt_mb(r["pss"]), per, r["procs"]))
        L.append("")
    dur = results.get("durability", {})
    if dur:
        L.append("## Durability probe (untimed): sync system calls per message, accept + Maildir delivery")
        L.append("")
        L.append("| server | messages | sync calls per message | calls |")
        L.append("|---|---:|---:|---|")
        for name, r in dur.items():
            L.append("| %s | %s | %s | %s |" % (name, r.get("count", "—"),
                     "%.2f" % r["per_message"] if "per_message" in r else "—",
                     ", ".join("%s %d" % kv for kv in sorted(r.get("calls", {}).items())) or "—"))
        L.append("")
    tls = results.get("tls", {})
    if tls:
        p, h = tls.get("postfix", {}), tls.get("hongyan", {})
        kb = lambda r: "%.0f" % (r["pss_per_session"] / 1024) if r.get("pss_per_session") else "—"
        cpu = lambda r: "%.2f" % r["cpu_per_1000"] if r.get("cpu_per_1000") else "—"
        L.append("## STARTTLS: full handshakes/s (RSA-2048 certificate, no resumption) and memory per TLS session")
        L.append("")
        L.append("| | Postfix | hongyan | hongyan / Postfix |")
        L.append("|---|---:|---:|---:|")
        L.append("| handshakes/s | %s | %s | %s |" % (fmt_rate(p.get("rate")), fmt_rate(h.get("rate")),
                                                      ratio(h.get("rate"), p.get("rate"))))
        L.append("| server CPU s per 1,000 handshakes | %s | %s | %s |" % (
            cpu(p), cpu(h), ratio(h.get("cpu_per_1000"), p.get("cpu_per_1000"))))
        L.append("| idle TLS sessions held | %s | %s | |" % (p.get("held", "—"), h.get("held", "—")))
        L.append("| PSS KB per TLS session | %s | %s | %s |" % (
            kb(p), kb(h), ratio(h.get("pss_per_session"), p.get("pss_per_session"))))
        L.append("")
    dk = results.get("dkim", {})
    if dk:
        def ms(v):
            return "%.2f" % v if v is not None else "—"

        def pm(row, k, e):  # value ± standard error, in ms
            if row.get(k) is None:
                return "—"
            return "%.2f ± %.2f" % (row[k], row.get(e) or 0)

        def per_s(v):  # operations per second of one core, from CPU ms per operation
            return "%.0f" % (1000 / v) if v and v > 0 else "—"

        L.append("## DKIM: operations/s, one process per operation on both sides (%d each)" % dk.get("n", 0))
        L.append("")
        L.append("| operation | opendkim-testmsg | hongyan | hongyan / opendkim |")
        L.append("|---|---:|---:|---:|")
        for kind in ("sign", "verify"):
            for alg, by in dk.get(kind, {}).items():
                o, h = by.get("opendkim", {}), by.get("hongyan", {})
                L.append("| %s %s | %s | %s | %s |" % (kind, alg, fmt_rate(o.get("rate")), fmt_rate(h.get("rate")),
                                                       ratio(h.get("rate"), o.get("rate"))))
        L.append("")
        L.append("### DKIM: CPU ms per operation, and above each tool's start-up baseline")
        L.append("")
        L.append("| operation | opendkim CPU ms | hongyan CPU ms | opendkim above start-up | hongyan above start-up "
                 "| opendkim ops/s per core above start-up | hongyan ops/s per core above start-up "
                 "| opendkim above start-up + key lookup | hongyan above start-up + key lookup |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in ("sign", "verify"):
            for alg, by in dk.get(kind, {}).items():
                o, h = by.get("opendkim", {}), by.get("hongyan", {})
                L.append("| %s %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    kind, alg, pm(o, "cpu_ms", "cpu_sem_ms"), pm(h, "cpu_ms", "cpu_sem_ms"),
                    pm(o, "cpu_above_ms", "cpu_above_err_ms"), pm(h, "cpu_above_ms", "cpu_above_err_ms"),
                    per_s(o.get("cpu_above_ms")), per_s(h.get("cpu_above_ms")),
                    pm(o, "cpu_above_lookup_ms", "cpu_above_lookup_err_ms"),
                    pm(h, "cpu_above_lookup_ms", "cpu_above_lookup_err_ms")))
        L.append("")
        L.append("| baseline process (same 4 KB message) | wall ms | CPU ms |")
        L.append("|---|---:|---:|")
        labels = {"baseline/opendkim": "start-up: `opendkim-testmsg`, unsigned (\"No signature\")",
                  "baseline/hongyan": "start-up: `hongyan dkim verify`, unsigned (\"none\")",
                  "baseline/hongyan version": "`hongyan version` (for reference)",
                  "lookup/opendkim": "start-up + key lookup: `opendkim-testmsg`, selector without a key",
                  "lookup/hongyan": "start-up + key lookup: `hongyan dkim verify`, selector without a key"}
        for kind in ("baseline", "lookup"):
            for name, r in dk.get(kind, {}).items():
                key = kind + "/" + name
                L.append("| %s | %s | %s |" % (labels.get(key, key), ms(r.get("wall_ms")),
                                               pm(r, "cpu_ms", "cpu_sem_ms")))
        L.append("")
    errs = list(results.get("errors", []))
    for name, r in results.get("tls", {}).items():
        if r.get("error"):
            errs.append("tls/%s: %s" % (name, r["error"]))
    if dk:
        errs.append("dkim: sign/ed25519/opendkim: opendkim-testmsg has no algorithm option and signs "
                    "with libopendkim's default, rsa-sha1; no Ed25519 signing figure for opendkim")
    for note in dk.get("notes", []):
        errs.append("dkim: " + note)
    for sc in ("accept", "relay"):
        for name, by in results.get(sc, {}).items():
            for s, r in by.items():
                if r.get("error"):
                    errs.append("%s/%s/%s sessions: %s" % (sc, name, s, r["error"]))
    for name, r in list(idle.items()) + list(dur.items()):
        if r.get("error"):
            errs.append("idle/%s: %s" % (name, r["error"]))
    if errs:
        L.append("## Notes and failures")
        L.append("")
        for e in errs:
            L.append("- " + e)
        L.append("")
    return "\n".join(L)


def loadavg():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError):
        return -1.0


RUN_MARK = "<!-- run -->"
NOTES = "Notes and failures"


def _section_key(section):
    """A results section's name without what varies from run to run (counts,
    the issue): "Lean acceptance", "Sustained", "DKIM", "STARTTLS"..."""
    title = section.split("\n", 1)[0][len("### "):]
    return re.split(r":| \(", title, 1)[0].strip()


def _split_run(run):
    """A run's text: its header (date, versions, load) and its ### sections."""
    parts = ("\n" + run.strip()).split("\n### ")
    return parts[0].strip(), ["### " + p.strip() for p in parts[1:]]


def merge_results(old_block, md):
    """The README's results block with this run's sections in place of the
    same sections of earlier runs. A partial run (--only lean,latency)
    replaces only its own tables; each table stays under the header (date,
    commit, load) of the run that measured it; a run none of whose tables
    is left is dropped, and so are its notes."""
    body = md.split("\n", 2)[2] if md.startswith("# ") else md  # drop the title
    body = body.replace("\n## ", "\n### ")  # sections under "Results on this machine"
    header, sections = _split_run(body)
    replaced = {_section_key(s) for s in sections} - {NOTES}
    runs = [header + "\n\n" + "\n\n".join(sections)]
    for old in old_block.split(RUN_MARK):
        if not old.strip():
            continue
        old_header, old_sections = _split_run(old)
        kept = [s for s in old_sections if _section_key(s) not in replaced]
        if any(_section_key(s) != NOTES for s in kept):
            runs.append(old_header + "\n\n" + "\n\n".join(kept))
    return "".join("%s\n%s\n" % (RUN_MARK, r.strip()) for r in runs)


def update_readme(md):
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin not in text or end not in text:
        print("README.md has no results markers; not updated", file=sys.stderr)
        return
    head, rest = text.split(begin, 1)
    old, tail = rest.split(end, 1)
    readme.write_text(head + begin + "\n" + merge_results(old, md) + end + tail)


def cleanup():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep stopping the others
            print("cleanup: %s" % e, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small message counts (a smoke run)")
    ap.add_argument("--servers", default="postfix,hongyan",
                    help="postfix, hongyan, and hongyan-base (the binary in $HONGYAN_BASE_BIN)")
    ap.add_argument("--only", default="lean,latency,restrict,metrics,sink,accept,relay,idle,durability,tls,dkim",
                    help="scenarios; `sustained` is added by --sustained")
    ap.add_argument("--sessions", default="1,20,100")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the lean scenario")
    ap.add_argument("--pair-rounds", type=int, default=7,
                    help="interleaved rounds of the restrict and metrics comparisons")
    ap.add_argument("--sustained", action="store_true",
                    help="also four 10,000-message acceptance runs in a row at 100 sessions (issue 13)")
    ap.add_argument("--latency-messages", type=int, default=200)
    ap.add_argument("--no-spool-fs", action="store_true",
                    help="keep the queues in bench/out instead of an ext4 filesystem of their own")
    ap.add_argument("--idle", type=int, default=10000, help="idle sessions to hold")
    ap.add_argument("--readme-from", metavar="RESULTS_JSON",
                    help="measure nothing: write the results.json of an earlier run into bench/README.md")
    ap.add_argument("--readme", action="store_true",
                    help="also write the results into bench/README.md (between its results markers)")
    ap.add_argument("--postfix-big-sessions", type=int, default=1000,
                    help="idle sessions for Postfix with its smtpd process limit raised")
    args = ap.parse_args()
    if args.readme_from:
        saved = json.loads(pathlib.Path(args.readme_from).read_text())
        update_readme(render(saved["results"], saved["meta"]))
        return

    def stop_on_signal(sig, frame):
        cleanup()
        sys.exit(128 + sig)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop_on_signal)

    global WORK
    OUT.mkdir(parents=True, exist_ok=True)
    # bench/lean.py and spoolfs.py import this module as "bench": the same one.
    sys.modules.setdefault("bench", sys.modules[__name__])
    import lean
    import spoolfs
    only = set(args.only.split(","))
    if args.sustained:
        only.add("sustained")
    servers = [s for s in args.servers.split(",") if s]
    if "hongyan-base" in servers and not HONGYAN_BASE:
        ap.error("hongyan-base needs HONGYAN_BASE_BIN=/path/to/the/other/hongyan")
    sessions = [int(s) for s in args.sessions.split(",")]
    # Messages per run: enough for a steady state, bounded in time.
    counts = {1: 300, 20: 3000, 100: 4000}
    if args.quick:
        counts = {1: 50, 20: 300, 100: 400}
    count_for = lambda s: counts.get(s, 3000 if not args.quick else 300)
    relay_sessions = [20]
    idle_n = args.idle if not args.quick else min(args.idle, 1000)

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release(),
            "load_start": loadavg()}
    bench_cpu = lean.BenchCpu()
    _cleanups.append(bench_cpu.remove)  # first in, so removed last: after the servers' groups
    meta["hongyan"] = Hongyan(OUT / "unused", 0).version()
    meta["postfix"] = Postfix(OUT / "unused", 0).version()
    if HONGYAN_BASE:
        meta["hongyan-base"] = Hongyan(OUT / "unused", 0, binary=HONGYAN_BASE).version()
    results = {"accept": {}, "relay": {}, "idle": {}, "sink": {}, "tls": {}, "dkim": {},
               "metrics": {}, "lean": {}, "latency": {}, "sustained": {},
               "durability": {}, "restrict": {}, "errors": []}
    lean_counts = {1: 1000, 20: 2000, 100: 2000}
    if args.quick:
        lean_counts = {1: 100, 20: 300, 100: 400}
    lean_count = lambda s: lean_counts.get(s, 300 if args.quick else 2000)
    rounds = 1 if args.quick else args.rounds
    pair_rounds = 1 if args.quick else args.pair_rounds
    try:
        meta["spool"] = "the bench's own directory, %s" % OUT
        fs = spoolfs.SpoolFs()
        if not args.no_spool_fs:
            try:
                WORK = fs.setup()
                meta["spool"] = fs.describe()
            except Exception as e:  # no loop device: measure anyway, and say so
                fs.teardown()
                log("no filesystem of its own for the spool: %s" % e)
                results["errors"].append("spool on the bench's own filesystem: %s" % e)
        if "lean" in only:
            log("lean acceptance and relay (issue 13): %s, %d rounds" % (",".join(servers), rounds))
            results["lean"] = lean.scenario_lean(servers, sessions, [s for s in sessions if s > 1],
                                                 lean_count, rounds)
        if "latency" in only:
            n = min(args.latency_messages, 20) if args.quick else args.latency_messages
            log("single-message latency, %d messages per server" % n)
            results["latency"] = lean.scenario_latency(servers, n)
            log("  ->", results["latency"])
        if "restrict" in only and "hongyan" in servers:
            log("hongyan restriction lists: none vs permit_mynetworks, reject_unauth_destination + one "
                "DNS list, 20 sessions")
            results["restrict"] = r = lean.scenario_restrict(20, lean_count(20), pair_rounds)
            log("  -> lists / empty: %s" % r.get("rate_ratio"))
        if "tls" in only and "hongyan" in servers and "hongyan-base" in servers:
            log("STARTTLS handshakes, hongyan vs hongyan-base, interleaved")
            results["tls_pair"] = lean.scenario_tls_pair(["hongyan", "hongyan-base"], pair_rounds,
                                                         count=80 if args.quick else 400)
        if "metrics" in only and "hongyan" in servers:
            log("hongyan metrics_listen cost, 20 sessions, off vs on (scraped every second)")
            results["metrics"] = r = lean.scenario_metrics(20, lean_count(20), pair_rounds)
            log("  -> on / off: %s" % r.get("rate_ratio"))
        if "sink" in only:
            for s in sessions:
                log("smtp-sink alone, %d sessions, %d messages" % (s, count_for(s)))
                results["sink"][str(s)] = r = scenario_sink(s, count_for(s))
                log("  ->", fmt_rate(r.get("rate")), "msg/s", r.get("error", ""))
        for name in servers:
            # The before/after binary is compared in the lean scenarios and for TLS.
            classic = only & ({"accept", "relay", "idle", "durability"} if name != "hongyan-base" else set())
            if not classic and not ("tls" in only):
                continue
            sink = Sink("relay-" + name).start()
            cg = lean.cgroup_for("classic-" + name)
            srv = (Postfix(WORK / "postfix", sink.port, cgroup=cg) if name == "postfix"
                   else Hongyan(WORK / name, sink.port, name=name, cgroup=cg,
                                binary=HONGYAN_BASE if name == "hongyan-base" else None))
            try:
                srv.start()
            except Exception as e:
                log("%s: cannot start: %s" % (name, e))
                results["errors"].append("%s not measurable: %s" % (name, e))
                sink.stop()
                continue
            meta[name] = srv.version()
            try:
                if "accept" in classic:
                    for s in sessions:
                        log("%s accept, %d sessions, %d messages" % (name, s, count_for(s)))
                        r = scenario_accept(srv, s, count_for(s))
                        results["accept"].setdefault(name, {})[str(s)] = r
                        log("  ->", fmt_rate(r.get("rate")), "msg/s,", "%.2f CPU s/1000" % r.get("cpu_per_1000", 0),
                            "peak RSS %s MB" % fmt_mb(r.get("peak_rss")), r.get("error", ""))
                if "relay" in classic:
                    for s in relay_sessions:
                        log("%s relay, %d sessions, %d messages" % (name, s, count_for(s)))
                        r = scenario_relay(srv, sink, s, count_for(s))
                        results["relay"].setdefault(name, {})[str(s)] = r
                        log("  ->", fmt_rate(r.get("rate")), "msg/s end to end", r.get("error", ""))
                if "idle" in classic:
                    # Memory scenarios start from a fresh server, so that
                    # processes left from earlier loads are not in the baseline.
                    srv.stop()
                    srv.start()
                    log("%s idle sessions: %d" % (name, idle_n))
                    r = scenario_idle(srv, idle_n)
                    results["idle"][name + " (as configured)"] = r
                    log("  -> %d answered EHLO, RSS %s MB" % (r["ehlo_ok"], fmt_mb(r["rss"])))
                if "durability" in classic:
                    log("%s durability probe (strace, untimed)" % name)
                    r = scenario_durability(srv)
                    results["durability"][name] = r
                    log("  -> sync calls per message: %.2f %s" % (r.get("per_message", 0), r.get("calls", "")))
                if "tls" in only:
                    srv.stop()
                    srv.start()
                    log("%s STARTTLS handshakes" % name)
                    # Postfix holds one session per smtpd process (100 at most).
                    results["tls"][name] = r = scenario_tls(srv, hold=80 if name == "postfix" else 500)
                    log("  ->", fmt_rate(r.get("rate")), "handshakes/s,",
                        "%s KB PSS per TLS session" % ("%.0f" % (r["pss_per_session"] / 1024)
                                                       if r.get("pss_per_session") else "—"),
                        r.get("error", ""))
            finally:
                srv.stop()
                sink.stop()
            if name == "postfix" and "idle" in only:
                # Fair to Postfix: the same test with smtpd's process limit
                # raised above the session count.
                sink = Sink("idle-postfix").start()
                # One smtpd process per session: 10,000 processes take many
                # minutes to spawn here, so this run holds fewer and the
                # table gives the memory per session.
                big_n = min(idle_n, args.postfix_big_sessions)
                big = Postfix(WORK / "postfix-big", sink.port, smtpd_process_limit=big_n + 100)
                try:
                    big.start()
                    log("postfix (smtpd process_limit %d) idle sessions: %d" % (big_n + 100, big_n))
                    r = scenario_idle(big, big_n)
                    results["idle"]["postfix (smtpd process_limit %d)" % (big_n + 100)] = r
                    log("  -> %d answered EHLO, RSS %s MB, %d processes" % (r["ehlo_ok"], fmt_mb(r["rss"]), r["procs"]))
                except Exception as e:
                    results["errors"].append("postfix with a raised process limit: %s" % e)
                finally:
                    big.stop()
                    sink.stop()
        if "dkim" in only:
            log("DKIM signing and verification, hongyan vs opendkim-testmsg")
            results["dkim"] = scenario_dkim(n=40 if args.quick else 400)
            log("  ->", results["dkim"])
        if "sustained" in only:
            n = 1000 if args.quick else 10000
            log("sustained: 4 runs of %d messages in a row at 100 sessions" % n)
            results["sustained"] = lean.scenario_sustained(
                servers, count=n, fresh_fs=fs.setup if not args.no_spool_fs and WORK != OUT else None)
    finally:
        meta["cpu"] = bench_cpu.summary()
        cleanup()
        try:
            os.unlink(OUT / "pids")  # all stopped: nothing for run.sh's trap to do
        except OSError:
            pass
        meta["load_end"] = loadavg()
        md = render(results, meta)
        (OUT / "results.md").write_text(md + "\n")
        (OUT / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        print()
        print(md)
        if args.readme:
            update_readme(md)


if __name__ == "__main__":
    main()
