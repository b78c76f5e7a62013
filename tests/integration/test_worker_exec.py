"""smtpd and delivery are each a fresh exec of the hongyan binary on every
(re)start: its own address layout, its own descriptors (exactly the ones
the supervisor names), and the configuration read again as a SIGHUP would;
each is restarted alone."""
import os
import signal
import subprocess

import pytest

from conftest import BIN, wait_for, wait_port
from test_daemon import children, greeting, sendmail, sendmail_smtp


def child_of(srv, role, not_pid=None):
    """The supervisor's child that runs `hongyan ROLE` (smtpd, delivery, keeper), once
    it has exec'd (a forked child not yet past exec would still show the
    supervisor's image)."""
    def find():
        for pid in children(srv.proc.pid):
            if pid == not_pid:
                continue
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and argv[1] == role.encode():
                return pid
        return None
    pid = wait_for(find, timeout=15)
    assert pid, srv.log_text()
    return pid


def smtpd_of(srv, not_pid=None):
    """The supervisor's smtpd: the network-facing process."""
    return child_of(srv, "smtpd", not_pid)


def delivery_of(srv, not_pid=None):
    """The supervisor's delivery process: the queue manager and its agents."""
    return child_of(srv, "delivery", not_pid)


def readies(srv):
    """How many times a child said it is ready, in this server's log."""
    return srv.log_text().count("ready:")


def text_base(pid):
    """Lowest address at which the hongyan binary is mapped: its load address."""
    exe = os.path.realpath(BIN)
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == exe:
                return int(fields[0].split("-")[0], 16)
    raise AssertionError("hongyan not mapped in %d" % pid)


def aslr_on():
    with open("/proc/sys/kernel/randomize_va_space") as f:
        return f.read().strip() != "0"


def test_smtpd_and_delivery_are_execs_of_hongyan(server):
    for pid in (smtpd_of(server), delivery_of(server)):
        assert os.readlink("/proc/%d/exe" % pid) == os.path.realpath(BIN)
        # Exactly what the supervisor passed on stays open: no configuration
        # snapshot (read once at start), nothing of the supervisor's besides.
        fds = {os.readlink("/proc/%d/fd/%s" % (pid, fd))
               for fd in os.listdir("/proc/%d/fd" % pid)}
        assert not [fd for fd in fds if "hongyan-config" in fd], fds
    # Only smtpd holds the listening sockets.
    listening = listening_inodes()
    assert socket_inodes(smtpd_of(server)) & listening
    assert not socket_inodes(delivery_of(server)) & listening


def listening_inodes():
    """Inodes of every TCP socket in LISTEN state on this machine."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    out.add(fields[9])
    return out


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


@pytest.mark.skipif(not aslr_on(), reason="ASLR is off on this machine")
def test_killed_smtpd_comes_back_alone_with_a_new_layout(server):
    """SIGKILL of smtpd: a new one serves within seconds, a fresh exec with
    another load address; delivery runs on untouched, and mail committed by
    the killed one just before is delivered."""
    old, delivery = smtpd_of(server), delivery_of(server)
    old_base = text_base(old)
    sendmail_smtp(server, "alice@example.com")
    before = readies(server)
    os.kill(old, signal.SIGKILL)
    new = smtpd_of(server, not_pid=old)
    assert wait_for(lambda: readies(server) > before, timeout=5), server.log_text()
    assert greeting(server.smtpd_port).startswith("220")
    assert os.readlink("/proc/%d/exe" % new) == os.path.realpath(BIN)
    assert text_base(new) != old_base
    assert delivery_of(server) == delivery
    assert "smtpd pid %d killed by signal 9; restarting" % old in server.log_text()
    assert wait_for(lambda: server.messages("example.com", "alice"), timeout=15), \
        server.log_text()
    # The new smtpd's mail reaches the same delivery process.
    sendmail_smtp(server, "bob@example.com")
    assert wait_for(lambda: server.messages("example.com", "bob"), timeout=15), \
        server.log_text()


def test_killed_delivery_comes_back_alone_and_delivers_the_queue(server_factory):
    """kill -9 of delivery alone: smtpd goes on accepting (its hints are
    dropped), a new delivery process finds every committed message."""
    srv = server_factory()
    smtpd, old = smtpd_of(srv), delivery_of(srv)
    before = readies(srv)
    os.kill(old, signal.SIGSTOP)  # nothing is delivered while it is frozen
    try:
        for i in range(5):
            sendmail_smtp(srv, "carol%d@example.com" % i)
    finally:
        os.kill(old, signal.SIGKILL)
        try:
            os.kill(old, signal.SIGCONT)  # the supervisor may have reaped it already
        except ProcessLookupError:
            pass
    delivery_of(srv, not_pid=old)
    assert wait_for(lambda: readies(srv) > before, timeout=15), srv.log_text()
    assert smtpd_of(srv) == smtpd
    for i in range(5):
        assert wait_for(lambda: srv.messages("example.com", "carol%d" % i), timeout=15), \
            srv.log_text()
    assert "delivery pid %d killed by signal 9; restarting" % old in srv.log_text()


def test_restarted_smtpd_reads_the_changed_configuration(server):
    """A configuration changed on disk, then an smtpd restart: the new smtpd
    runs on the new file, as after a SIGHUP."""
    old = smtpd_of(server)
    server.settings["smtpd_banner"] = "$myhostname ESMTP changed"
    server.write_config()
    before = readies(server)
    os.kill(old, signal.SIGKILL)
    smtpd_of(server, not_pid=old)
    assert wait_for(lambda: readies(server) > before, timeout=15)
    assert "ESMTP changed" in greeting(server.smtpd_port)


def test_restarted_delivery_with_a_broken_file_keeps_the_last_good(server):
    """A SIGHUP with a broken file keeps the running configuration; a
    delivery process restarted over a broken file starts on the last one
    that loaded (here the one a SIGHUP brought in), not on nothing."""
    server.settings["mydestination"] += ", hup.example"
    server.reload()
    assert wait_for(lambda: server.log_text().count("reload: configuration") >= 2)
    good = server.cfg.read_text()
    server.cfg.write_text(good + "smtpd_banner_typo = x\n")
    old = delivery_of(server)
    before = readies(server)
    os.kill(old, signal.SIGKILL)
    delivery_of(server, not_pid=old)
    assert wait_for(lambda: readies(server) > before, timeout=15), server.log_text()
    assert "starting on the last configuration that loaded" in server.log_text()
    server.cfg.write_text(good)  # sendmail reads the file too
    sendmail(server, "frank@hup.example")
    assert wait_for(lambda: server.messages("hup.example", "frank"), timeout=15), \
        server.log_text()


def test_split_subcommands_are_not_for_people():
    for cmd in ("smtpd", "delivery", "worker"):
        r = subprocess.run([BIN, cmd], capture_output=True, text=True, timeout=30)
        assert r.returncode == 64, cmd
    for cmd in ("smtpd", "delivery"):
        r = subprocess.run([BIN, cmd], capture_output=True, text=True, timeout=30)
        assert "started by the supervisor only" in r.stderr
        r = subprocess.run([BIN, cmd, "--parent", str(os.getpid()), "--lock-fd", "0"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 64
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert " smtpd " not in r.stdout and " delivery " not in r.stdout
