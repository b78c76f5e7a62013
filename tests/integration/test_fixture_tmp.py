"""The test fixtures themselves: a server's data directory must stay
reachable by its worker (mail_owner) whatever other pytest sessions on the
machine do.

As root, pytest keeps its temporary directories under /tmp/pytest-of-root
and, at the start of every session, takes group and other access off that
directory (pytest >= 7.2: chmod go-rwx). The fixtures used to open it with
chmod 0711 so that the worker could reach tmp_path; the next session
started anywhere on the machine (another `make test`, another engineer's
run) closed it again, and for the rest of the run every worker got
"Permission denied" on its own spool: the intermittent EACCES of full-suite
runs. conftest.py now keeps the base directory outside pytest's own tree.
"""
import getpass
import os
import pathlib
import smtplib
import subprocess
import sys
import tempfile

import pytest

from conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="the worker runs as mail_owner only when started as root")


def other_pytest_session(tmp_path):
    """A plain pytest session (no conftest of ours, default base temporary
    directory) that uses tmp_path, as any other run on the machine does."""
    d = tmp_path / "other-session"
    d.mkdir()
    (d / "pytest.ini").write_text("[pytest]\n")
    (d / "test_other.py").write_text("def test_uses_tmp_path(tmp_path):\n"
                                     "    assert tmp_path.is_dir()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DEBUG_TEMPROOT"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--noconftest", "-c", str(d / "pytest.ini"), str(d / "test_other.py")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_another_pytest_session_does_not_cut_the_worker_off(server_factory, tmp_path):
    srv = server_factory()
    other_pytest_session(tmp_path)
    # Every directory from / to the data directory can still be crossed by
    # mail_owner, and the worker receives and delivers (spool and Maildir).
    for p in [srv.data] + list(srv.data.parents):
        assert os.stat(p).st_mode & 0o001, "%s: %o" % (p, os.stat(p).st_mode)
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        refused = s.sendmail("alice@sender.example", ["u@example.com"],
                             b"Subject: reach\r\n\r\nstill reachable\r\n")
        assert refused == {}
    assert wait_for(lambda: srv.messages("example.com", "u"), timeout=20), \
        srv.log_text()[-3000:]
    assert "Permission denied" not in srv.log_text(), srv.log_text()[-3000:]


def test_base_directory_is_outside_pytests_own(tmp_path):
    """What the test above relies on: no session's housekeeping touches a
    directory between / and tmp_path."""
    pytest_root = (pathlib.Path(tempfile.gettempdir()) / ("pytest-of-" + getpass.getuser())).resolve()
    assert pytest_root not in tmp_path.resolve().parents
