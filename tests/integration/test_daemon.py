"""`hongyan serve` as a process: privilege drop, smtpd and delivery
restarted after a crash, SIGHUP reload, SIGTERM, and configuration errors
at start."""
import os
import pwd
import signal
import smtplib
import socket
import subprocess

import pytest

from conftest import BIN, children, role, wait_for, wait_port


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return s.recv(512).decode()


def sendmail(srv, rcpt, body="Subject: t\n\nbody\n"):
    r = srv.cmd("sendmail", rcpt, input=body)
    assert r.returncode == 0, r.stderr


def sendmail_smtp(srv, rcpt, body="Subject: t\r\n\r\nbody\r\n"):
    """One message to rcpt through smtpd (smtplib on smtpd_listen)."""
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=15) as c:
        c.sendmail("sender@example.net", [rcpt], body)


def split_children(srv):
    """The supervisor's children by role: {"smtpd": [pid], "delivery": [...], ...}."""
    out = {}
    for p in children(srv.proc.pid):
        out.setdefault(role(p), []).append(p)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_smtpd_and_delivery_run_as_mail_owner(server):
    assert wait_for(lambda: sorted(split_children(server)) == ["delivery", "keeper", "smtpd"])
    kids = split_children(server)
    # One of each; the keeper runs as keeper_user (test_keeper.py).
    assert [len(kids[k]) for k in ("smtpd", "delivery", "keeper")] == [1, 1, 1]
    assert uid_of(server.proc.pid) == 0
    for k in ("smtpd", "delivery"):
        assert uid_of(kids[k][0]) == pwd.getpwnam("hongyan").pw_uid
    queue = server.data / "queue"
    assert os.stat(queue).st_uid == pwd.getpwnam("hongyan").pw_uid


@pytest.mark.parametrize("kind", ["smtpd", "delivery"])
def test_killed_child_is_restarted_and_resumes(server, kind):
    old = wait_for(lambda: server.child_pids(kind))[0]
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: [p for p in server.child_pids(kind) if p != old], timeout=15)
    assert new, server.log_text()
    wait_port(server.smtpd_port)
    assert "%s pid %d killed by signal 9; restarting" % (kind, old) in server.log_text()
    # Mail queued after the kill is delivered (through the new one).
    sendmail(server, "alice@example.com")
    sendmail_smtp(server, "bob@example.com")
    assert wait_for(lambda: server.messages("example.com", "alice"), timeout=15)
    assert wait_for(lambda: server.messages("example.com", "bob"), timeout=15)


def test_sighup_reloads_configuration(server):
    server.settings["mydestination"] += ", new.example"
    server.reload()
    assert wait_for(lambda: "reload: configuration" in server.log_text())
    sendmail(server, "bob@new.example")
    assert wait_for(lambda: server.messages("new.example", "bob"), timeout=15), server.log_text()


def test_broken_reload_keeps_running_configuration(server):
    server.cfg.write_text(server.cfg.read_text() + "smtpd_banner_typo = x\n")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in server.log_text())
    assert "unknown key 'smtpd_banner_typo'" in server.log_text()
    # smtpd and delivery still run on the previous configuration: mail
    # that sendmail (reading the repaired file) queues is delivered.
    server.write_config()
    sendmail(server, "carol@example.com")
    assert wait_for(lambda: server.messages("example.com", "carol"), timeout=15)


def test_sigterm_stops_cleanly(server):
    assert server.stop(signal.SIGTERM) == 0
    assert "terminating on signal 15" in server.log_text()


def test_broken_config_line_at_start(server_factory):
    srv = server_factory(start=False)
    srv.cfg.write_text(srv.cfg.read_text() + "\nmessage_size_limit = ten megabytes\n")
    r = subprocess.run([BIN, "-c", str(srv.cfg), "serve"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 78
    lines = srv.cfg.read_text().count("\n")
    assert "%s:%d: message_size_limit" % (srv.cfg, lines) in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mail_owner is only used when started as root")
def test_missing_mail_owner_says_how_to_create_it(server_factory):
    srv = server_factory(extra={"mail_owner": "no_such_user_hy"}, start=False)
    r = subprocess.run([BIN, "-c", str(srv.cfg), "serve"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 67
    assert "useradd --system" in r.stderr and "no_such_user_hy" in r.stderr


def test_port_in_use_is_a_clear_error(server_factory):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        srv = server_factory(extra={"smtpd_listen": "127.0.0.1:%d" % port}, start=False)
        r = subprocess.run([BIN, "-c", str(srv.cfg), "serve"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 69
        assert "smtpd_listen: cannot listen on 127.0.0.1:%d" % port in r.stderr
    finally:
        busy.close()


def test_children_exit_when_their_supervisor_dies(server):
    """An orphaned smtpd would keep the sockets and an orphaned delivery the
    spool: a new server could not start, or two would share them."""
    assert wait_for(lambda: sorted(split_children(server)) == ["delivery", "keeper", "smtpd"])
    kids = split_children(server)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    for kind, pids in kids.items():
        assert wait_for(lambda: not os.path.exists("/proc/%d" % pids[0]), timeout=15), \
            "%s %d outlived its supervisor" % (kind, pids[0])
    server.proc = None
    server.logf.close()
    server.start()
    assert "ready:" in server.log_text()
    sendmail(server, "dave@example.com")
    assert wait_for(lambda: server.messages("example.com", "dave"), timeout=15)


def test_two_servers_never_share_a_spool(server, server_factory):
    other = server_factory(start=False)
    other.settings["data_directory"] = server.settings["data_directory"]
    other.write_config()
    r = subprocess.run([BIN, "-c", str(other.cfg), "serve"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 75, r.stderr
    assert "in use by another hongyan server" in r.stderr
    # The first server is untouched.
    assert server.proc.poll() is None
    assert greeting(server.smtpd_port).startswith("220")
