"""make install's script: the binary, the Postfix-named links, the unit, the
man page and a packaged main.cf that loads."""
import os
import subprocess

from conftest import BIN, ROOT


def test_install_into_destdir(tmp_path):
    build = os.path.relpath(os.path.dirname(BIN), ROOT)
    r = subprocess.run([str(ROOT / "scripts/install.sh"), build, "/usr/local"],
                       env=dict(os.environ, DESTDIR=str(tmp_path)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sbin = tmp_path / "usr/local/sbin"
    assert os.access(sbin / "hongyan", os.X_OK)
    # The local submission helper: setgid to its group when installed by root.
    helper = (sbin / "hongyan-postdrop").stat()
    if os.geteuid() == 0:
        import grp
        assert helper.st_mode & 0o7777 == 0o2755
        assert helper.st_gid == grp.getgrnam("hongyan-drop").gr_gid and helper.st_uid == 0
    for name in ("sendmail", "mailq", "newaliases"):
        assert os.readlink(sbin / name) == "hongyan"
    # postconf and postmap stay Postfix's unless asked for (POSTFIX_LINKS=yes below).
    for name in ("postmap", "postconf"):
        assert not os.path.lexists(sbin / name)
    unit = (tmp_path / "etc/systemd/system/hongyan.service").read_text()
    assert "ExecStart=/usr/local/sbin/hongyan serve" in unit
    assert (tmp_path / "usr/local/share/man/man8/hongyan.8").exists()
    # The packaged configuration loads and listens on the world's ports.
    cfg = tmp_path / "etc/hongyan/main.cf"
    r = subprocess.run([str(sbin / "hongyan"), "-c", str(cfg), "config", "-x",
                        "smtpd_listen", "data_directory"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "smtpd_listen = [::]:25\ndata_directory = /var/lib/hongyan\n"
    r = subprocess.run([str(ROOT / "scripts/install.sh"), build, "/usr/local"],
                       env=dict(os.environ, DESTDIR=str(tmp_path), POSTFIX_LINKS="yes"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # postconf through the installed link reads $HONGYAN_CONFIG.
    r = subprocess.run([str(sbin / "postconf"), "-n"], capture_output=True, text=True,
                       env=dict(os.environ, HONGYAN_CONFIG=str(cfg)))
    assert r.returncode == 0 and "submission_listen = [::]:587" in r.stdout


def test_unit_is_hardened(tmp_path):
    """systemd's own review of the unit as installed: 'OK' or better
    (docs/security.md). Offline: no running systemd is needed."""
    build = os.path.relpath(os.path.dirname(BIN), ROOT)
    r = subprocess.run([str(ROOT / "scripts/install.sh"), build, "/usr"],
                       env=dict(os.environ, DESTDIR=str(tmp_path)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    unit = next(tmp_path.rglob("hongyan.service"))
    text = unit.read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "SystemCallFilter=@system-service seccomp"):
        assert line in text, line
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    last = [l for l in r.stdout.splitlines() if "Overall exposure level" in l][-1]
    score = float(last.split(":")[1].split()[0])
    assert score < 5.0 and any(w in last for w in ("OK", "SAFE", "PERFECT")), last
