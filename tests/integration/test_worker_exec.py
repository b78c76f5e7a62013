"""The worker is a fresh exec of the hongyan binary on every (re)start: its
own address layout, its own descriptors (exactly the ones the supervisor
names), and the configuration read again as a SIGHUP would."""
import os
import signal
import subprocess

import pytest

from conftest import BIN, wait_for, wait_port
from test_daemon import children, greeting, sendmail


def child_of(srv, role, not_pid=None):
    """The supervisor's child that runs `hongyan ROLE` (worker, keeper), once
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


def worker_of(srv, not_pid=None):
    """The supervisor's one worker."""
    return child_of(srv, "worker", not_pid)


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


def test_worker_is_an_exec_of_hongyan(server):
    worker = worker_of(server)
    assert os.readlink("/proc/%d/exe" % worker) == os.path.realpath(BIN)
    # Exactly what the supervisor passed on stays open: no configuration
    # snapshot (read once at start), nothing of the supervisor's besides.
    fds = {os.readlink("/proc/%d/fd/%s" % (worker, fd))
           for fd in os.listdir("/proc/%d/fd" % worker)}
    assert not [fd for fd in fds if "hongyan-config" in fd], fds


@pytest.mark.skipif(not aslr_on(), reason="ASLR is off on this machine")
def test_killed_worker_comes_back_with_a_new_layout(server):
    old = worker_of(server)
    old_base = text_base(old)
    os.kill(old, signal.SIGKILL)
    new = worker_of(server, not_pid=old)
    wait_port(server.smtpd_port, timeout=5)
    assert wait_for(lambda: server.log_text().count("ready:") >= 2, timeout=5)
    assert greeting(server.smtpd_port).startswith("220")
    assert os.readlink("/proc/%d/exe" % new) == os.path.realpath(BIN)
    assert text_base(new) != old_base


def test_restarted_worker_reads_the_changed_configuration(server):
    """A configuration changed on disk, then a worker restart: the new worker
    runs on the new file, as after a SIGHUP."""
    old = worker_of(server)
    server.settings["mydestination"] += ", later.example"
    server.write_config()
    os.kill(old, signal.SIGKILL)
    worker_of(server, not_pid=old)
    assert wait_for(lambda: server.log_text().count("ready:") >= 2, timeout=15)
    sendmail(server, "erin@later.example")
    assert wait_for(lambda: server.messages("later.example", "erin"), timeout=15), \
        server.log_text()


def test_restarted_worker_with_a_broken_file_keeps_the_last_good(server):
    """A SIGHUP with a broken file keeps the running configuration; a worker
    restarted over a broken file starts on the last one that loaded (here the
    one a SIGHUP brought in), not on nothing."""
    server.settings["mydestination"] += ", hup.example"
    server.reload()
    assert wait_for(lambda: "reload: configuration" in server.log_text())
    good = server.cfg.read_text()
    server.cfg.write_text(good + "smtpd_banner_typo = x\n")
    old = worker_of(server)
    os.kill(old, signal.SIGKILL)
    worker_of(server, not_pid=old)
    assert wait_for(lambda: server.log_text().count("ready:") >= 2, timeout=15), \
        server.log_text()
    assert "starting on the last configuration that loaded" in server.log_text()
    server.cfg.write_text(good)  # sendmail reads the file too
    sendmail(server, "frank@hup.example")
    assert wait_for(lambda: server.messages("hup.example", "frank"), timeout=15), \
        server.log_text()


def test_worker_subcommand_is_not_for_people():
    r = subprocess.run([BIN, "worker"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 64
    assert "started by the supervisor only" in r.stderr
    r = subprocess.run([BIN, "worker", "--parent", str(os.getpid()), "--lock-fd", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert " worker " not in r.stdout
