"""The spool's on-disk version (docs/queue.md, "On-disk version"): a queue
from a release before the marker is read as it is, marked and delivered; a
queue marked by a newer release, or with a marker that is not one, is
refused by the server and by `hongyan queue` and left untouched. And the
start-up warning for a spool on ext4 without a journal.

HONGYAN_PREVIOUS_BIN=/path/to/an/older/hongyan makes the first test write
its queue with that binary (a real upgrade) instead of removing the marker
(what such a release leaves)."""
import os
import smtplib
import uuid

import pytest

import conftest
from conftest import wait_for
from powercut import LoopExt4
from smtppeer import Peer
from test_powercut import subject_counts

MARKER = "hongyan-spool 2\n"


def queue_dir(srv):
    return srv.data / "queue"


def test_queue_from_before_the_marker_is_delivered(server_factory, monkeypatch):
    previous = os.environ.get("HONGYAN_PREVIOUS_BIN")
    relay_port = Peer().port  # not started yet: everything is deferred
    srv = server_factory({"relayhost": "[127.0.0.1]:%d" % relay_port,
                          "minimal_backoff_time": "60s", "maximal_backoff_time": "120s"},
                         start=False)
    current = conftest.BIN
    if previous:
        monkeypatch.setattr(conftest, "BIN", previous)
    srv.start()
    tokens = []
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        for _ in range(10):
            tok = uuid.uuid4().hex
            s.sendmail("a@example.com", ["rcpt@remote.test"], "Subject: %s\r\n\r\nbody\r\n" % tok)
            tokens.append(tok)
    assert wait_for(lambda: srv.log_text().count("status=deferred") >= 10, timeout=30)
    srv.stop()
    marker = queue_dir(srv) / "spool-version"
    if previous:
        # A release from before the marker, or one that writes version 1.
        assert not marker.exists() or marker.read_text() == "hongyan-spool 1\n"
    else:
        marker.unlink()  # what a release from before the marker leaves
    monkeypatch.setattr(conftest, "BIN", current)
    with Peer(port=relay_port) as relay:
        srv.start()
        assert marker.read_text() == MARKER
        assert srv.cmd("queue", "flush").returncode == 0
        assert wait_for(lambda: all(t in subject_counts(relay.messages) for t in tokens),
                        timeout=30), srv.log_text()[-3000:]
        assert wait_for(lambda: "Mail queue is empty" in srv.cmd("queue").stdout, timeout=30)
    assert not os.listdir(queue_dir(srv) / "corrupt")


@pytest.mark.parametrize("content", ["hongyan-spool 3\n", "hongyan-spool 01\n", "garbage\n", ""])
def test_queue_it_cannot_read_is_refused_and_untouched(server_factory, content):
    srv = server_factory(start=False)
    active = queue_dir(srv) / "active"
    active.mkdir(parents=True)
    (queue_dir(srv) / "spool-version").write_text(content)
    # A file no release writes: this one would quarantine it; it must stay.
    (active / "ZZZZZZZZZZZZZZZ").write_text("HONGYAN-ENVELOPE 9\n")
    srv.start(wait=False)
    assert srv.proc.wait(timeout=20) == 78  # EX_CONFIG, without a restarting worker
    srv.proc = None
    srv.logf.close()
    want = "the queue was written by a newer hongyan" if content == "hongyan-spool 3\n" \
        else "not a spool version marker"
    assert want in srv.log_text()
    r = srv.cmd("queue")
    assert r.returncode != 0 and want in r.stderr
    assert os.listdir(active) == ["ZZZZZZZZZZZZZZZ"]
    assert (queue_dir(srv) / "spool-version").read_text() == content


def test_version_1_queue_is_marked_2_and_delivered(server_factory):
    """Version 1 (two files per message) is read as it is; the marker says 2
    afterwards, so a release that cannot read journal/ refuses the queue."""
    relay_port = Peer().port
    srv = server_factory({"relayhost": "[127.0.0.1]:%d" % relay_port,
                          "minimal_backoff_time": "60s", "maximal_backoff_time": "120s"})
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        s.sendmail("a@example.com", ["rcpt@remote.test"], "Subject: %s\r\n\r\nbody\r\n" % tok)
    assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=30)
    srv.stop()
    marker = queue_dir(srv) / "spool-version"
    marker.write_text("hongyan-spool 1\n")
    with Peer(port=relay_port) as relay:
        srv.start()
        assert marker.read_text() == MARKER
        assert srv.cmd("queue", "flush").returncode == 0
        assert wait_for(lambda: tok in subject_counts(relay.messages), timeout=30)


@pytest.mark.skipif(not os.environ.get("HONGYAN_PREVIOUS_BIN"),
                    reason="HONGYAN_PREVIOUS_BIN names no release before version 2")
def test_previous_release_refuses_a_version_2_queue(server_factory, monkeypatch):
    srv = server_factory()
    srv.stop()
    assert (queue_dir(srv) / "spool-version").read_text() == MARKER
    monkeypatch.setattr(conftest, "BIN", os.environ["HONGYAN_PREVIOUS_BIN"])
    srv.start(wait=False)
    assert srv.proc.wait(timeout=20) == 78
    srv.proc = None
    srv.logf.close()
    assert "the queue was written by a newer hongyan (spool version 2" in srv.log_text()


def test_marker_is_not_followed_through_a_symlink(server_factory, tmp_path):
    """Root reads the marker in a directory mail_owner writes."""
    srv = server_factory(start=False)
    queue_dir(srv).mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text(MARKER)
    os.symlink(secret, queue_dir(srv) / "spool-version")
    r = srv.cmd("queue")
    assert r.returncode != 0 and "spool-version" in r.stderr, r.stderr


@pytest.mark.parametrize("journal", [True, False])
def test_warns_about_ext4_without_a_journal(server_factory, tmp_path, journal):
    opts = () if journal else ("-O", "^has_journal")
    with LoopExt4(tmp_path / "disk", mkfs_options=opts) as fs:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data")})
        assert wait_for(lambda: "ready:" in srv.log_text(), timeout=10)
        warned = "on ext4 without a journal" in srv.log_text()
        srv.stop()
        assert warned == (not journal), srv.log_text()[-2000:]
