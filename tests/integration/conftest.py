"""Shared fixtures for integration tests: the real hongyan binary, on
loopback, on random high ports, in a temporary data directory.

Run with /usr/bin/python3 (Debian's, which sees python3-aiosmtpd & co.).
HONGYAN_BIN names the binary under test (make test sets it).
"""
import os
import pathlib
import random
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("HONGYAN_BIN", str(ROOT / "build" / "hongyan"))
# Third-party conformance suites, vendored with their licences (tests/data/conformance/README.md).
CONFORMANCE = ROOT / "tests" / "data" / "conformance"
POSTDROP = os.path.join(os.path.dirname(BIN), "hongyan-postdrop")


def install_postdrop():
    """As scripts/install.sh does: the helper setgid to the setgid_group, so
    that sendmail run by any user can reach maildrop/ (a fresh build is not)."""
    if os.geteuid() != 0 or not os.path.exists(POSTDROP):
        return
    import grp
    try:
        gid = grp.getgrnam("hongyan-drop").gr_gid
    except KeyError:
        return  # scripts/ensure-user.sh creates it; the tests that need it say so
    st = os.stat(POSTDROP)
    if st.st_gid != gid or st.st_mode & 0o7777 != 0o2755:
        os.chown(POSTDROP, 0, gid)
        os.chmod(POSTDROP, 0o2755)


install_postdrop()

# As root, where the base temporary directory lives (see pytest_configure).
BASETEMP_ROOT_NAME = "hongyan-tests-of-root"


def _prepare_basetemp_root(path):
    """Our own parent for the sessions' base directories: root's, 0711 so
    that mail_owner can cross it, and refused if someone else planted it."""
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise pytest.UsageError("%s: not a directory of root's that only root may write; "
                                "remove it" % path)
    if st.st_mode & 0o7777 != 0o711:
        os.chmod(path, 0o711)  # mkdir is subject to the umask


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """As root, keeps tmp_path out of /tmp/pytest-of-root. The worker runs as
    mail_owner and must cross every directory above its data directory, so
    Server opens them (0711); but every pytest session that starts on the
    machine (another make test, another engineer's run) takes group and
    other access off pytest-of-root again (pytest >= 7.2), and the workers
    of a run still going then got "Permission denied" on their own spool
    (test_fixture_tmp.py). Here the sessions get numbered directories under
    a parent that no other session's housekeeping touches, with pytest's
    own locking and pruning (the last 3 are kept)."""
    if os.geteuid() != 0 or config.option.basetemp:
        return
    from _pytest.pathlib import LOCK_TIMEOUT, make_numbered_dir_with_cleanup
    temproot = os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()
    parent = pathlib.Path(temproot).resolve() / BASETEMP_ROOT_NAME
    _prepare_basetemp_root(parent)
    run_dir = make_numbered_dir_with_cleanup(root=parent, prefix="run-", keep=3,
                                             lock_timeout=LOCK_TIMEOUT, mode=0o711)
    # Below the numbered directory, so that its cleanup lock stays: pytest
    # empties a given basetemp, and a numbered directory without its lock
    # is one that another session's pruning may remove.
    config.option.basetemp = str(run_dir / "t")


def _ephemeral_low():
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A currently unused loopback TCP port, below the kernel's ephemeral
    range: a port from that range (what binding port 0 gives) can be taken
    as the local end of any outgoing connection between this check and the
    server's bind (a CI run failed so: "server exited with 69"), while ports
    below it are only ever taken by a bind, here a random one among
    thousands. Falls back to the kernel's choice when none is found."""
    low = _ephemeral_low()
    if low > 11000:
        for _ in range(50):
            port = random.randrange(10000, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("port %d did not open" % port)


def wait_for(predicate, timeout=10.0, step=0.05):
    """Polls predicate until it is true; returns its last value. Bounded."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


def run(args, input=None, env=None, check=False, timeout=60):
    """Runs the hongyan binary with args; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([BIN] + list(args), input=input, capture_output=True,
                          text=isinstance(input, str) or input is None,
                          env=full_env, check=check, timeout=timeout)


def children(pid):
    """Pids whose parent is pid (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def role(pid):
    """The hidden command a child of the supervisor was exec'd as ("smtpd",
    "delivery", "keeper"), or None."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    return argv[1].decode() if len(argv) > 1 else None



def process_group_alive(pgid):
    """Whether a process of group pgid is still running (zombies hold nothing)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def kill_process_group(pgid, timeout=10):
    """SIGKILL to the whole group, then wait until every one of them is gone:
    a child still in the kernel (a syncfs under way) holds its descriptors,
    the spool lock among them, until it really exits, and a server started
    meanwhile would find its queue "in use by another hongyan server"."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)

class Server:
    """A hongyan instance with its own main.cf and data directory."""

    def __init__(self, tmp, extra=None):
        self.tmp = pathlib.Path(tmp)
        self.data = self.tmp / "data"
        self.smtpd_port = free_port()
        self.submission_port = free_port()
        self.smtps_port = free_port()
        self.cfg = self.tmp / "main.cf"
        self.log = self.tmp / "server.log"
        self.settings = {
            "myhostname": "mx.example.com",
            "mydomain": "example.com",
            "mydestination": "$myhostname, localhost, example.com",
            "data_directory": str(self.data),
            "smtpd_listen": "127.0.0.1:%d" % self.smtpd_port,
            "submission_listen": "127.0.0.1:%d" % self.submission_port,
            "mynetworks": "127.0.0.0/8",
            "maillog_file": str(self.tmp / "maillog"),
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        }
        if extra:
            self.settings.update(extra)
        self.proc = None
        self.tmp.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # As root the worker runs as mail_owner, which must be able to
            # reach the data directory through pytest's private tmp dirs.
            for p in [self.tmp] + list(self.tmp.parents):
                if str(p) in ("/", "/tmp"):
                    break
                os.chmod(p, os.stat(p).st_mode | 0o711)
        self.write_config()

    def write_config(self):
        self.cfg.write_text("".join("%s = %s\n" % kv for kv in self.settings.items()))

    def cmd(self, *args, input=None, check=False, timeout=60):
        """Runs `hongyan -c main.cf ARGS`."""
        return run(["-c", str(self.cfg)] + list(args), input=input, check=check,
                   timeout=timeout)

    def _new_ports(self):
        """Another process took one of our ports between free_port() and
        bind(): pick new ones and move every setting that named the old."""
        for attr in ("smtpd_port", "submission_port", "smtps_port"):
            old, new = getattr(self, attr), free_port()
            setattr(self, attr, new)
            for k, v in self.settings.items():
                self.settings[k] = v.replace("127.0.0.1:%d" % old, "127.0.0.1:%d" % new)
        self.write_config()

    def start(self, wait=True):
        # The log is kept across restarts: wait for this start's smtpd and delivery.
        readies = self.log_text().count("ready:")
        for attempt in range(3):
            self.logf = open(self.log, "ab")
            self.proc = subprocess.Popen([BIN, "-c", str(self.cfg), "serve"],
                                         stdout=self.logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            if not wait:
                return self
            try:
                wait_port(self.smtpd_port, proc=self.proc)
                break
            except RuntimeError as e:
                # EX_UNAVAILABLE (69): a listening address was taken.
                if self.proc.returncode != 69 or attempt == 2:
                    raise RuntimeError("%s (attempt %d); its log ends:\n%s"
                                       % (e, attempt + 1, self.log_text()[-3000:])) from e
                self.logf.close()
                self._new_ports()
        if wait:
            # The supervisor binds before its children run; wait for both.
            if not wait_for(lambda: self.log_text().count("ready:") >= readies + 2 or
                            self.proc.poll() is not None,
                            timeout=15):
                raise TimeoutError("smtpd and delivery not ready:\n" + self.log_text())
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # smtpd, delivery and the keeper are children in the same session; make sure none survives.
        kill_process_group(self.proc.pid)
        rc = self.proc.returncode
        self.proc = None
        self.logf.close()
        return rc

    def reload(self):
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def child_pids(self, kind):
        """Live children of this server's supervisor of one kind (role()):
        the one place tests find the smtpd, delivery and keeper processes."""
        return [p for p in children(self.proc.pid) if role(p) == kind]

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def maildir(self, domain, local):
        return self.data / "mail" / domain / local

    def messages(self, domain, local):
        """Files in the mailbox's new/ directory, sorted by name."""
        d = self.maildir(domain, local) / "new"
        return sorted(d.iterdir()) if d.exists() else []


@pytest.fixture
def server_factory(tmp_path):
    made = []

    def make(extra=None, start=True, name="srv"):
        srv = Server(tmp_path / ("%s%d" % (name, len(made))), extra)
        srv.tmp.mkdir(parents=True, exist_ok=True)
        srv.write_config()
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        srv.stop()
    for srv in made:
        # Under sanitizers a leak or UB report goes to the log: fail on it.
        text = srv.log_text()
        assert "ERROR: AddressSanitizer" not in text, text[-4000:]
        assert "runtime error:" not in text, text[-4000:]


@pytest.fixture
def server(server_factory):
    return server_factory()
