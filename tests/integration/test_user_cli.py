"""hongyan user add|passwd|del|list: the smtpd_sasl_users file it writes,
checked with Python's crypt module (libxcrypt underneath, as the server)."""
import os
import pty
import select
import stat
import subprocess
import time
import warnings

import pytest

from conftest import BIN, run

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402  (deprecated in 3.11, still the libxcrypt binding)


@pytest.fixture
def cf(tmp_path):
    data = tmp_path / "data"
    path = tmp_path / "main.cf"
    path.write_text("myhostname = mx.example.com\ndata_directory = %s\n" % data)
    return path


def users_path(cf):
    return cf.parent / "data" / "users"


def user(cf, *args, input=None):
    return run(["-c", str(cf), "user"] + list(args), input=input)


def entries(cf):
    out = {}
    for line in users_path(cf).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, h = line.strip().split(":", 1)
            out[name] = h
    return out


def verify(h, password):
    return crypt.crypt(password, h) == h


def test_add_list_passwd_del(cf):
    r = user(cf, "add", "alice@example.com", input="correct horse\n")
    assert r.returncode == 0, r.stderr
    assert "correct horse" not in r.stdout + r.stderr
    h = entries(cf)["alice@example.com"]
    assert h.startswith("$y$"), h  # yescrypt by default
    assert verify(h, "correct horse")
    assert not verify(h, "correct horsE")

    assert user(cf, "add", "--sha512", "bob", input="b-pass\r\n").returncode == 0
    assert user(cf, "add", "--bcrypt", "carol", input="c-pass").returncode == 0
    e = entries(cf)
    assert e["bob"].startswith("$6$") and verify(e["bob"], "b-pass")
    assert e["carol"].startswith("$2b$") and verify(e["carol"], "c-pass")

    r = user(cf, "list")
    assert r.returncode == 0
    assert r.stdout.split() == ["alice@example.com", "bob", "carol"]

    # A comment written by the operator survives rewrites.
    p = users_path(cf)
    p.write_text("# managed by hand too\n" + p.read_text())
    old = entries(cf)["bob"]
    assert user(cf, "passwd", "bob", input="new-b\n").returncode == 0
    new = entries(cf)["bob"]
    assert new != old and verify(new, "new-b") and not verify(new, "b-pass")
    assert entries(cf)["alice@example.com"] == h  # others untouched
    assert p.read_text().startswith("# managed by hand too\n")

    assert user(cf, "del", "bob").returncode == 0
    assert "bob" not in entries(cf)
    assert user(cf, "list").stdout.split() == ["alice@example.com", "carol"]


def test_mode_and_owner(cf):
    assert user(cf, "add", "alice", input="pw\n").returncode == 0
    st = os.stat(users_path(cf))
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        import pwd
        try:
            # The keeper's group reads it; the worker's uid and groups cannot.
            gid = pwd.getpwnam("hongyan-keys").pw_gid
        except KeyError:
            pytest.skip("no hongyan-keys user (scripts/ensure-user.sh makes it)")
        assert st.st_uid == 0 and st.st_gid == gid


def test_errors(cf):
    assert user(cf, "add", "alice", input="pw\n").returncode == 0
    before = users_path(cf).read_text()
    r = user(cf, "add", "alice", input="other\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = user(cf, "passwd", "nobody", input="x\n")
    assert r.returncode == 1 and "no user nobody" in r.stderr
    r = user(cf, "del", "nobody")
    assert r.returncode == 1
    for bad in ["a:b", "a b", "a\tb", ""]:
        r = user(cf, "add", bad, input="x\n")
        assert r.returncode == 64, (bad, r.stderr)
    r = user(cf, "add", "empty", input="\n")
    assert r.returncode == 65 and "empty password" in r.stderr
    r = user(cf, "add", "nothing", input="")
    assert r.returncode == 65
    r = user(cf, "add", "long", input="x" * 5000 + "\n")
    assert r.returncode == 65
    assert user(cf).returncode == 64
    assert user(cf, "frobnicate", "x").returncode == 64
    assert user(cf, "list", "extra").returncode == 64
    # Nothing was changed by any of that.
    assert users_path(cf).read_text() == before


def test_list_without_file(cf):
    r = user(cf, "list")
    assert r.returncode == 0 and r.stdout == ""
    assert not users_path(cf).exists()


def _read_until(fd, needle, timeout=10.0):
    """Reads fd until needle appears (bounded); returns what was read."""
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            got += chunk
    return got


def test_terminal_password_not_echoed(cf):
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "-c", str(cf), "user", "add", "tty-user"],
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        err = _read_until(proc.stderr.fileno(), b"New password: ")
        assert b"New password: " in err
        os.write(master, b"tty-secret\n")
        err = _read_until(proc.stderr.fileno(), b"Retype new password: ")
        assert b"Retype" in err
        os.write(master, b"tty-secret\n")
        assert proc.wait(timeout=30) == 0
        # What the terminal showed: no echo of the password.
        echoed = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            echoed += chunk
        assert b"tty-secret" not in echoed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        os.close(master)
    assert verify(entries(cf)["tty-user"], "tty-secret")


def test_terminal_mismatch(cf):
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "-c", str(cf), "user", "add", "tty-user"],
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        assert b"New password: " in _read_until(proc.stderr.fileno(), b"New password: ")
        os.write(master, b"one\n")
        assert b"Retype" in _read_until(proc.stderr.fileno(), b"Retype new password: ")
        os.write(master, b"two\n")
        assert proc.wait(timeout=30) == 65
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        os.close(master)
    assert not users_path(cf).exists()
