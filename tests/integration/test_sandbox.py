"""The sandbox of smtpd and delivery: no_new_privs and a seccomp allowlist that kills the
process on a forbidden call (the supervisor logs it and starts a new one),
and the daily report run, which needs exec, started by the supervisor."""
import grp
import json
import os
import pathlib
import pwd
import re
import signal
import subprocess

import pytest

from conftest import BIN, wait_for, wait_port
from test_daemon import sendmail, sendmail_smtp
from test_worker_exec import delivery_of, smtpd_of

SANITIZED = bool(os.environ.get("HONGYAN_SANITIZED"))


def build_option(name):
    """A Meson option of the build HONGYAN_BIN comes from (None when unknown)."""
    info = pathlib.Path(BIN).resolve().parent / "meson-info" / "intro-buildoptions.json"
    try:
        for opt in json.loads(info.read_text()):
            if opt["name"] == name:
                return opt["value"]
    except (OSError, ValueError):
        pass
    return None


TEST_HOOKS = build_option("test_hooks") is True


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def listening_inodes(ports):
    """Socket inodes of TCP sockets listening on one of ports."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == "0A" and port in ports:
                    inodes.add(fields[9])
    return inodes


def holders(inodes):
    """Pids with a descriptor on one of the socket inodes."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    out.add(int(pid))
        except OSError:
            continue
    return out


def test_every_unprivileged_listener_is_sandboxed(server):
    smtpd = smtpd_of(server)
    pids = holders(listening_inodes({server.smtpd_port, server.submission_port,
                                     server.smtps_port}))
    assert smtpd in pids and server.proc.pid in pids
    # delivery holds none: the listening sockets are smtpd's and the supervisor's.
    assert delivery_of(server) not in pids
    checked = 0
    for pid in pids:
        st = status(pid)
        if st["Uid"].split()[0] == "0":
            continue  # the supervisor: root, parses nothing from the network
        checked += 1
        assert st["NoNewPrivs"] == "1", (pid, st)
        if not SANITIZED:  # sanitizer builds set no_new_privs only (sandbox.c)
            assert st["Seccomp"] == "2", (pid, st)
            # Every thread: the work queues were running before the filter (TSYNC).
            for tid in os.listdir("/proc/%d/task" % pid):
                assert status(int(tid))["Seccomp"] == "2", tid
    if os.geteuid() == 0:
        assert checked == 1
    # delivery, which talks to the network as a client, is sandboxed the same way.
    st = status(delivery_of(server))
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == ("0" if SANITIZED else "2")
    # Sessions, delivery and DNS still work inside the filter.
    sendmail(server, "alice@example.com")
    assert wait_for(lambda: server.messages("example.com", "alice"), timeout=15), \
        server.log_text()


@pytest.mark.skipif(not TEST_HOOKS or SANITIZED,
                    reason="needs a -Dtest_hooks=true build without sanitizers (make test)")
def test_seccomp_violation_kills_smtpd_and_it_comes_back(server_factory, monkeypatch):
    monkeypatch.setenv("HONGYAN_TEST_SECCOMP_TRIGGER", "1")
    srv = server_factory()
    old, delivery = smtpd_of(srv), delivery_of(srv)
    before = srv.log_text().count("ready:")
    os.kill(old, signal.SIGUSR2)
    assert wait_for(lambda: "seccomp violation" in srv.log_text(), timeout=10), srv.log_text()
    log = srv.log_text()
    assert "smtpd pid %d killed by signal %d (SIGSYS): seccomp violation" % (
        old, signal.SIGSYS) in log
    assert "execve was not refused" not in log
    smtpd_of(srv, not_pid=old)
    assert wait_for(lambda: srv.log_text().count("ready:") > before, timeout=15)
    assert delivery_of(srv) == delivery  # restarted alone
    wait_port(srv.smtpd_port)
    sendmail_smtp(srv, "bob@example.com")
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15), srv.log_text()


@pytest.mark.skipif(not TEST_HOOKS or SANITIZED,
                    reason="needs a -Dtest_hooks=true build without sanitizers (make test)")
def test_accept_is_smtpds_alone(server_factory, monkeypatch):
    """The allowlists differ by role: accept4 in smtpd reaches the kernel
    (EBADF on no socket), in delivery, which talks to the network as a
    client only, it is a seccomp violation; delivery comes back alone."""
    monkeypatch.setenv("HONGYAN_TEST_SECCOMP_TRIGGER", "accept")
    srv = server_factory()
    smtpd, old = smtpd_of(srv), delivery_of(srv)
    os.kill(smtpd, signal.SIGUSR2)
    assert wait_for(lambda: "accept4 was let through: Bad file descriptor" in srv.log_text(),
                    timeout=10), srv.log_text()
    before = srv.log_text().count("ready:")
    os.kill(old, signal.SIGUSR2)
    assert wait_for(lambda: "delivery pid %d killed by signal %d (SIGSYS): seccomp violation" % (
        old, signal.SIGSYS) in srv.log_text(), timeout=10), srv.log_text()
    delivery_of(srv, not_pid=old)
    assert wait_for(lambda: srv.log_text().count("ready:") > before, timeout=15)
    assert smtpd_of(srv) == smtpd
    sendmail_smtp(srv, "carol@example.com")
    assert wait_for(lambda: srv.messages("example.com", "carol"), timeout=15), srv.log_text()


@pytest.mark.skipif(not TEST_HOOKS, reason="needs a -Dtest_hooks=true build (make test)")
def test_supervisor_starts_the_daily_report_run(server_factory, monkeypatch):
    monkeypatch.setenv("HONGYAN_TEST_REPORTS_AFTER", "1")
    srv = server_factory(extra={"smtp_tls_reporting": "yes"})
    assert wait_for(lambda: "report send started" in srv.log_text(), timeout=10), srv.log_text()
    # It ran and finished (reaped, nothing to send), and neither smtpd nor delivery exec'd it.
    assert wait_for(lambda: "0 TLS report(s) queued" in srv.log_text(), timeout=20), \
        srv.log_text()
    assert "report send exited with status" not in srv.log_text()
    assert "seccomp violation" not in srv.log_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching credentials needs root")
def test_report_credentials_queue_mail_under_no_new_privs(server):
    """systemd's NoNewPrivileges= makes the setgid bit of hongyan-postdrop do
    nothing; the report run has setgid_group as its gid already, so its
    sendmail still reaches maildrop/. Same credentials, by setpriv."""
    try:
        gid = grp.getgrnam("hongyan-drop").gr_gid
    except KeyError:
        pytest.skip("no hongyan-drop group (scripts/ensure-user.sh)")
    uid = pwd.getpwnam("hongyan").pw_uid
    base = ["setpriv", "--no-new-privs", "--reuid=%d" % uid, "--groups=%d" % gid]
    ok = subprocess.run(base + ["--regid=%d" % gid, BIN, "-c", str(server.cfg), "sendmail",
                                "carol@example.com"],
                        input="Subject: r\n\nreport\n", capture_output=True, text=True,
                        timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert wait_for(lambda: server.messages("example.com", "carol"), timeout=15), \
        server.log_text()
    # With mail_owner's own group as gid, as delivery has, the helper refuses:
    # the report run's gid is what makes it work.
    own = subprocess.run(base + ["--regid=%d" % pwd.getpwnam("hongyan").pw_gid, BIN, "-c",
                                 str(server.cfg), "sendmail", "dave@example.com"],
                         input="Subject: r\n\nreport\n", capture_output=True, text=True,
                         timeout=30)
    assert own.returncode != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the capability set is root's")
def test_serves_with_the_units_capabilities_and_no_new_privs(server_factory):
    """What etc/hongyan.service leaves the supervisor (its
    CapabilityBoundingSet= and NoNewPrivileges=), by setpriv: it still
    prepares directories, drops to mail_owner, passes SIGHUP on, and mail
    flows."""
    unit = (pathlib.Path(__file__).resolve().parents[2] / "etc" / "hongyan.service").read_text()
    caps = next(l for l in unit.splitlines() if l.startswith("CapabilityBoundingSet="))
    keep = ",".join("+" + c[len("CAP_"):].lower() for c in caps.split("=", 1)[1].split())
    assert "NoNewPrivileges=yes" in unit
    srv = server_factory(start=False)
    srv.logf = open(srv.log, "ab")
    srv.proc = subprocess.Popen(["setpriv", "--no-new-privs", "--bounding-set=-all," + keep,
                                 "--inh-caps=-all", BIN, "-c", str(srv.cfg), "serve"],
                                stdout=srv.logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait_port(srv.smtpd_port, proc=srv.proc)
    assert wait_for(lambda: "ready:" in srv.log_text(), timeout=15), srv.log_text()
    srv.settings["mydestination"] += ", unit.example"
    srv.reload()
    assert wait_for(lambda: "reload: configuration" in srv.log_text()), srv.log_text()
    sendmail(srv, "erin@unit.example")
    assert wait_for(lambda: srv.messages("unit.example", "erin"), timeout=15), srv.log_text()
    assert status(smtpd_of(srv))["NoNewPrivs"] == "1"
    assert status(delivery_of(srv))["NoNewPrivs"] == "1"
    supervisor = status(srv.proc.pid)
    assert supervisor["NoNewPrivs"] == "1"
    # CAP_NET_BIND_SERVICE, SETGID, SETUID, CHOWN, DAC_OVERRIDE, FOWNER, KILL and no other.
    assert int(supervisor["CapBnd"], 16) == sum(1 << n for n in (10, 6, 7, 0, 1, 3, 5))


@pytest.mark.skipif(not TEST_HOOKS, reason="needs a -Dtest_hooks=true build (make test)")
@pytest.mark.skipif(os.geteuid() != 0, reason="mail_owner needs root to start")
def test_landlock_keeps_smtpd_to_its_directories(server_factory, monkeypatch, tmp_path):
    """A file mail_owner may read by its mode, outside every directory the
    configuration names, is refused to smtpd with EACCES (Landlock);
    the configuration file and the system's are still read."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    secret = outside / "secret"
    secret.write_text("not for smtpd\n")
    os.chmod(secret, 0o644)
    srv = server_factory(start=False)  # makes tmp_path traversable for mail_owner
    # The control: by ownership and mode alone, mail_owner can read it.
    r = subprocess.run(["/bin/cat", str(secret)], user="hongyan", group="hongyan",
                       capture_output=True, text=True)
    assert r.returncode == 0 and "not for smtpd" in r.stdout, r.stderr
    monkeypatch.setenv("HONGYAN_TEST_LANDLOCK_PROBE",
                       "%s:%s:/etc/hosts" % (secret, srv.cfg))
    srv.start()
    assert wait_for(lambda: "ready:" in srv.log_text(), timeout=15)
    if "landlock: not available" in srv.log_text():
        pytest.skip("this kernel has no Landlock")
    assert "landlock: ABI" in srv.log_text(), srv.log_text()
    os.kill(smtpd_of(srv), signal.SIGUSR2)
    assert wait_for(lambda: "test probe: open /etc/hosts" in srv.log_text(), timeout=10), \
        srv.log_text()
    log = srv.log_text()
    assert "test probe: open %s: Permission denied" % secret in log, log
    assert "test probe: open %s: ok" % srv.cfg in log, log
    assert "test probe: open /etc/hosts: ok" in log, log
    # Delivery to Maildir (on the work-queue threads) still works inside the ruleset.
    sendmail(srv, "alice@example.com")
    assert wait_for(lambda: srv.messages("example.com", "alice"), timeout=15), srv.log_text()


def probe_results(log, kind):
    """{path: "ok" or the error} from one kind's "test probe: open PATH: ..." lines."""
    out = {}
    for m in re.finditer(r"hongyan/%s\[\d+\]: warning: test probe: open (\S+): (.*)" % kind, log):
        out[m.group(1)] = m.group(2)
    return out


@pytest.mark.skipif(not TEST_HOOKS, reason="needs a -Dtest_hooks=true build (make test)")
@pytest.mark.skipif(os.geteuid() != 0, reason="mail_owner needs root to start")
def test_landlock_rulesets_differ_by_role(server_factory, monkeypatch, tmp_path):
    """smtpd cannot open a mailbox file nor the relay password map, which
    mail_owner could read by their modes; delivery, which delivers to the
    one and reads the other, can."""
    srv = server_factory(start=False)
    relay = tmp_path / "relay"
    relay.mkdir(mode=0o755)
    os.chmod(relay, 0o755)
    passwd = relay / "sasl_passwd"
    passwd.write_text("[relay.example.com]:587 user:secret\n")
    os.chmod(passwd, 0o644)
    # data_directory apart from main.cf's directory (and the mail log's),
    # which every process may read, as on a real host (/etc vs /var/lib).
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    srv.settings["data_directory"] = str(data)
    mail = data / "mail"
    mail.mkdir()
    mailbox_file = mail / "probe"
    mailbox_file.write_text("a mailbox file\n")
    os.chmod(mailbox_file, 0o644)
    srv.settings["smtp_sasl_password_maps"] = "texthash:%s" % passwd
    srv.settings["virtual_mailbox_base"] = str(mail)
    srv.write_config()
    monkeypatch.setenv("HONGYAN_TEST_LANDLOCK_PROBE", "%s:%s:%s" % (passwd, mailbox_file, srv.cfg))
    srv.start()
    if "landlock: not available" in srv.log_text():
        pytest.skip("this kernel has no Landlock")
    os.kill(smtpd_of(srv), signal.SIGUSR2)
    os.kill(delivery_of(srv), signal.SIGUSR2)
    assert wait_for(lambda: len(probe_results(srv.log_text(), "smtpd")) == 3 and
                    len(probe_results(srv.log_text(), "delivery")) == 3, timeout=10), \
        srv.log_text()
    smtpd, delivery = (probe_results(srv.log_text(), k) for k in ("smtpd", "delivery"))
    assert smtpd[str(passwd)] == smtpd[str(mailbox_file)] == "Permission denied", smtpd
    assert delivery[str(passwd)] == delivery[str(mailbox_file)] == "ok", delivery
    assert smtpd[str(srv.cfg)] == delivery[str(srv.cfg)] == "ok"
    # Mail still flows through both: received by smtpd, delivered into the mailbox.
    sendmail_smtp(srv, "alice@example.com")
    assert wait_for(lambda: list((mail / "example.com" / "alice" / "new").glob("*")),
                    timeout=15), srv.log_text()
