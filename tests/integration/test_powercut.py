"""Power cuts (docs/queue.md, Durability): the spool and the Maildirs on an
ext4 filesystem whose power we cut (powercut.py). Nothing acknowledged may
be lost, and nothing acknowledged may end up in corrupt/; and the same cut
does lose mail when the server's syncs are taken away (nosync_shim.c), so
these tests can fail. About 30 s; the long campaign (ten rounds, cuts 5 to
30 s after deferrals) is test_powercut_long.py, in `make durability`."""
import os
import pathlib
import smtplib
import subprocess
import threading
import uuid

import pytest

from conftest import wait_for
from powercut import LoopExt4
from smtppeer import Peer
from test_durability import check_exactly_once, delivered_tokens, load
from test_sandbox import build_option

HERE = pathlib.Path(__file__).resolve().parent


def subject_counts(messages):
    counts = {}
    for m in messages:
        for line in m.data.split(b"\r\n" if b"\r\n" in m.data else b"\n"):
            if line.startswith(b"Subject: "):
                tok = line[9:].decode()
                counts[tok] = counts.get(tok, 0) + 1
                break
    return counts


def cut_and_remount(fs, srv, stop, threads):
    """The power goes (fs.cut), the load threads stop, the disk comes back."""
    fs.cut(srv)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    fs.remount()


def cut_under_load(fs, srv, acked, wanted, per_thread):
    """Local load into srv until WANTED more 250s, then the cut; the server
    is left stopped on the remounted disk."""
    stop = threading.Event()
    before = len(acked)
    threads = load(srv, acked, stop, per_thread=per_thread)
    assert wait_for(lambda: len(acked) >= before + wanted, timeout=60), srv.log_text()[-3000:]
    cut_and_remount(fs, srv, stop, threads)


def quarantined(fs):
    corrupt = fs.mountpoint / "data" / "queue" / "corrupt"
    return sorted(os.listdir(corrupt)) if corrupt.exists() else []


def test_power_cut_after_deferral_loses_nothing(server_factory, tmp_path):
    """The campaign's case: 50 messages deferred (relay down), the power
    goes 8 s later, when ext4 has committed the envelopes' new size but not
    the appended deferral records. Every message must still arrive."""
    with LoopExt4(tmp_path / "disk") as fs:
        relay_port = Peer().port  # not started: connections are refused
        srv = server_factory({
            "data_directory": str(fs.mountpoint / "data"),
            "relayhost": "[127.0.0.1]:%d" % relay_port,
            # One deferral before the cut, as in the campaign; `queue flush` after.
            "minimal_backoff_time": "60s",
            "maximal_backoff_time": "120s",
        })
        tokens = []
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
            for _ in range(50):
                tok = uuid.uuid4().hex
                s.sendmail("a@example.com", ["rcpt@remote.test"],
                           "Subject: %s\r\n\r\nbody\r\n" % tok)
                tokens.append(tok)
        assert wait_for(lambda: srv.log_text().count("status=deferred") >= 50, timeout=30), \
            srv.log_text()[-3000:]
        wait_for(lambda: False, timeout=8)  # past ext4's 5 s journal commit
        fs.cut(srv)
        fs.remount()
        with Peer(port=relay_port) as relay:
            srv.start()
            r = srv.cmd("queue", "flush")
            assert r.returncode == 0, r.stderr
            ok = wait_for(lambda: all(t in subject_counts(relay.messages) for t in tokens),
                          timeout=60)
            got = subject_counts(relay.messages)
            missing = [t for t in tokens if t not in got]
            assert ok and not missing, "%d acknowledged messages lost; quarantined: %s\n%s" % (
                len(missing), quarantined(fs), srv.log_text()[-3000:])
            assert not quarantined(fs)
            assert wait_for(lambda: "Mail queue is empty" in srv.cmd("queue").stdout,
                            timeout=30)
        srv.stop()


def test_power_cut_under_load_delivers_exactly_once(server_factory, tmp_path):
    """Local delivery under load, the power cut four times: every message
    that got its 250 is in the Maildir exactly once, none quarantined."""
    with LoopExt4(tmp_path / "disk") as fs:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data")})
        srv.data = fs.mountpoint / "data"  # where check_exactly_once looks for the Maildir
        acked = []
        for _ in range(4):
            cut_under_load(fs, srv, acked, 40, per_thread=60)
            srv.start()
            check_exactly_once(srv, acked)
            assert not quarantined(fs), srv.log_text()[-3000:]
        srv.stop()


def journal_segments(fs):
    """The numbers of the journal's segments, in use and free (docs/queue.md, The journal)."""
    j = fs.mountpoint / "data" / "queue" / "journal"
    names = [p.name for p in j.glob("*.seg")] + [p.name for p in j.glob("free/*.seg")]
    return sorted(int(n[:16], 16) for n in names)


@pytest.mark.skipif(build_option("test_hooks") is not True, reason="needs -Dtest_hooks=true")
def test_power_cut_while_journal_segments_are_recycled(server_factory, tmp_path, monkeypatch):
    """Segments of 16 KB (a test hook; 4 MB otherwise) hold a few messages
    each, so the load fills dozens, delivery gives them back to journal/free/
    and smtpd writes over them: a cut then finds recycled segments whose old
    records must never count, and new ones whose records must all."""
    monkeypatch.setenv("HONGYAN_TEST_JOURNAL_SEGMENT_SIZE", "16384")
    with LoopExt4(tmp_path / "disk") as fs:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data")})
        srv.data = fs.mountpoint / "data"
        acked = []
        for _ in range(3):
            cut_under_load(fs, srv, acked, 120, per_thread=80)
            srv.start()
            check_exactly_once(srv, acked)
            assert not quarantined(fs), srv.log_text()[-3000:]
        srv.stop()
        segs = journal_segments(fs)
    # Many numbers, few files: segments were reused.
    assert segs and segs[-1] >= 20 and len(segs) <= 8, segs


def build_nosync_shim(tmp_path):
    """nosync_shim.c as a shared object the mail_owner can load."""
    so = tmp_path / "nosync_shim.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(HERE / "nosync_shim.c")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    os.chmod(so, 0o755)
    return so


def start_without_syncs(srv, shim, monkeypatch):
    """Starts srv with every sync call a no-op (the worker is an exec of the
    same binary and inherits the environment)."""
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    try:
        srv.start()
    finally:
        monkeypatch.delenv("LD_PRELOAD")


@pytest.mark.skipif(os.environ.get("HONGYAN_SANITIZED") == "1",
                    reason="ASan must come first among preloaded libraries; "
                           "this proves the test, not the binary")
def test_power_cut_without_syncs_loses_mail(server_factory, tmp_path, monkeypatch):
    """The same cut as above, with the server's fsync/fdatasync/syncfs turned
    into no-ops: acknowledged mail must go missing, or the power-cut tests
    could not tell a missing sync. Up to three rounds (a cut right after
    ext4's own 5 s journal commit could, rarely, lose nothing)."""
    shim = build_nosync_shim(tmp_path)
    with LoopExt4(tmp_path / "disk") as fs:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data")}, start=False)
        srv.data = fs.mountpoint / "data"
        # The queue made with syncs first: without them its version marker
        # may not survive a cut, and the restart would refuse the queue.
        srv.start()
        srv.stop()
        acked, missing = [], []
        for _ in range(3):
            start_without_syncs(srv, shim, monkeypatch)
            cut_under_load(fs, srv, acked, 40, per_thread=60)
            srv.start()  # with its syncs: what survived is delivered
            wait_for(lambda: "Mail queue is empty" in srv.cmd("queue").stdout, timeout=30)
            wait_for(lambda: False, timeout=2)  # the last deliveries
            got = delivered_tokens(srv)
            missing = [t for t in acked if t not in got]
            srv.stop()
            if missing:
                break
        print("without syncs: %d of %d acknowledged messages lost" % (len(missing), len(acked)))
        assert missing, "no acknowledged message lost without syncs: the power cut is not real"


def relay_then_cut(fs, srv, relay, n):
    """N messages relayed to RELAY; once the log says all were sent (it does
    after their done-log records are synced), the power goes; the server
    comes back and has a few seconds to send anything again. The counts by
    Subject token, and the tokens."""
    tokens = []
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        for _ in range(n):
            tok = uuid.uuid4().hex
            s.sendmail("a@example.com", ["rcpt@remote.test"], "Subject: %s\r\n\r\nbody\r\n" % tok)
            tokens.append(tok)
    assert wait_for(lambda: srv.log_text().count("status=sent") >= n, timeout=30), \
        srv.log_text()[-3000:]
    fs.cut(srv)
    fs.remount()
    srv.start()
    wait_for(lambda: False, timeout=3)  # recovery, and any delivery it starts
    srv.stop()
    return subject_counts(relay.messages), tokens


def test_power_cut_after_relaying_sends_nothing_twice(server_factory, tmp_path):
    """A remote server's 250 is recorded durably (the journal's done-log,
    fdatasync'd: docs/queue.md, Results) before the log says sent: a power
    cut right after sends none of those messages again."""
    with LoopExt4(tmp_path / "disk") as fs, Peer() as relay:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data"),
                              "relayhost": "[127.0.0.1]:%d" % relay.port})
        counts, tokens = relay_then_cut(fs, srv, relay, 40)
        assert all(counts.get(t) == 1 for t in tokens), \
            "sent again after the cut: %s" % {t: c for t, c in counts.items() if c != 1}


@pytest.mark.skipif(os.environ.get("HONGYAN_SANITIZED") == "1",
                    reason="ASan must come first among preloaded libraries")
def test_power_cut_without_done_log_syncs_sends_again(server_factory, tmp_path, monkeypatch):
    """The test above can fail: with only the done-logs' syncs taken away,
    relayed messages are sent again after the cut."""
    shim = build_nosync_shim(tmp_path)
    monkeypatch.setenv("HONGYAN_NOSYNC_SUFFIX", ".done")
    with LoopExt4(tmp_path / "disk") as fs, Peer() as relay:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data"),
                              "relayhost": "[127.0.0.1]:%d" % relay.port}, start=False)
        srv.start()  # the queue made with syncs (as above)
        srv.stop()
        start_without_syncs(srv, shim, monkeypatch)
        counts, tokens = relay_then_cut(fs, srv, relay, 40)
        twice = [t for t in tokens if counts.get(t, 0) > 1]
        print("without the done-logs' syncs: %d of %d sent twice" % (len(twice), len(tokens)))
        assert twice, "nothing sent twice without the done-log syncs: the test cannot fail"


def test_helper_skips_cleanly_without_root(monkeypatch, tmp_path):
    """The harness's one reason to skip besides a missing loop device."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception):
        with LoopExt4(tmp_path / "disk"):
            pass
