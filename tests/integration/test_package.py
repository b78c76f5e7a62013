"""The Debian package as the system MTA (make package-test; skipped in
make test): `make deb` builds it from a clean copy of the tree, apt
installs it on this machine together with bsd-mailx (which needs an MTA),
mail(1) and cron-style `/usr/sbin/sendmail -t` submit through it to a
server started from the installed binary, and purge leaves nothing behind.

Needs root and a machine with no other MTA; it says why when it cannot run.
"""
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, free_port, wait_for, wait_port

pytestmark = pytest.mark.skipif(os.environ.get("HONGYAN_PACKAGE_TEST") != "1",
                                reason="installs a package on this machine: make package-test")

DIST = ROOT / "dist"
APT = ["apt-get", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"]


def sh(args, timeout=600, env=None, input=None):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                       input=input)
    return r


def installed(pkg):
    r = sh(["dpkg-query", "-W", "-f=${Status}", pkg])
    return r.returncode == 0 and "install ok installed" in r.stdout


@pytest.fixture
def package():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if os.path.lexists("/usr/sbin/sendmail") or installed("hongyan"):
        pytest.fail("an MTA (or hongyan) is installed already: /usr/sbin/sendmail exists")
    for path in ("/etc/hongyan", "/var/lib/hongyan"):
        if os.path.exists(path):
            pytest.fail("%s exists; purge would remove it" % path)
    r = sh([str(ROOT / "scripts/build-deb.sh"), str(DIST)], timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    deb = sorted(DIST.glob("hongyan_*.deb"))[-1]
    assert "E:" not in (DIST / "lintian.txt").read_text()
    had_mailx = installed("bsd-mailx")
    args = APT + ["install", str(deb)] + ([] if had_mailx else ["bsd-mailx"])
    r = sh(args)
    if r.returncode != 0:  # an index older than the mirror: refresh once
        sh(APT + ["update"])
        r = sh(args)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield deb
    finally:
        purge = ["hongyan"] + ([] if had_mailx else ["bsd-mailx"])
        r = sh(["dpkg", "--purge"] + purge)
        assert r.returncode == 0, r.stdout + r.stderr
    assert not os.path.lexists("/usr/sbin/sendmail")
    assert not os.path.exists("/etc/hongyan") and not os.path.exists("/var/lib/hongyan")


def test_package_installs_sends_and_purges(package, tmp_path):
    # What the package put where.
    assert os.path.realpath("/usr/sbin/sendmail") == "/usr/sbin/hongyan"
    for name in ("/usr/bin/mailq", "/usr/bin/newaliases"):
        assert os.path.realpath(name) == "/usr/sbin/hongyan", name
    assert not os.path.lexists("/usr/sbin/postconf")  # Postfix's names stay free
    conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", "hongyan"]).stdout
    assert "/etc/hongyan/main.cf" in conffiles
    unit = pathlib.Path("/lib/systemd/system/hongyan.service").read_text()
    assert "ExecStart=/usr/sbin/hongyan serve" in unit
    assert sh(["getent", "passwd", "hongyan"]).returncode == 0
    provides = sh(["dpkg-query", "-W", "-f=${Provides}", "hongyan"]).stdout
    assert "mail-transport-agent" in provides
    r = sh(["/usr/sbin/hongyan", "-c", "/etc/hongyan/main.cf", "config", "-n"])
    assert r.returncode == 0, r.stderr

    # A server from the installed binary on loopback high ports (the packaged
    # main.cf listens on port 25); the Postfix-named commands find its
    # configuration through HONGYAN_CONFIG, which mail(1) passes on.
    os.chmod(tmp_path, 0o755)
    for p in tmp_path.parents:
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o711)
    port = free_port()
    cfg = tmp_path / "main.cf"
    cfg.write_text("myhostname = host.package.test\nmydestination = localhost, $myhostname\n"
                   "data_directory = %s/data\nsmtpd_listen = 127.0.0.1:%d\n"
                   "submission_listen = 127.0.0.1:%d\nmaillog_file = %s/maillog\n"
                   "queue_run_delay = 1s\n" % (tmp_path, port, free_port(), tmp_path))
    env = dict(os.environ, HONGYAN_CONFIG=str(cfg))
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(["/usr/sbin/hongyan", "-c", str(cfg), "serve"], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port, proc=proc)
        r = sh(["mail", "-s", "from mailx", "root@localhost"], env=env,
               input="sent with bsd-mailx\n", timeout=60)
        assert r.returncode == 0, r.stderr
        r = sh(["/usr/sbin/sendmail", "-t"], env=env, timeout=60,
               input="To: root@localhost\nSubject: from cron\n\ncron output\n")
        assert r.returncode == 0, r.stderr
        new = tmp_path / "data/mail/localhost/root/new"
        assert wait_for(lambda: new.exists() and len(list(new.iterdir())) == 2, timeout=30), \
            (tmp_path / "server.log").read_text()
        bodies = [p.read_text() for p in new.iterdir()]
        assert any("Subject: from mailx" in b and "sent with bsd-mailx" in b for b in bodies)
        assert any("Subject: from cron" in b and "cron output" in b for b in bodies)
        r = sh(["/usr/bin/mailq"], env=env)
        assert r.returncode == 0, r.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        log.close()
