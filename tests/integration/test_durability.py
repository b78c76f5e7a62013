"""Nothing acknowledged is lost: kill -9 of smtpd, of delivery and of the
whole server under load, then every message that got its 250 is delivered exactly
once; a full disk is answered with 452 and loses nothing."""
import os
import signal
import smtplib
import subprocess
import threading
import uuid

import pytest

from conftest import kill_process_group, wait_for, wait_port

RCPT_DOMAIN = "example.com"


def load(server, acked, stop, per_thread=40, threads=4, rcpt_domain=RCPT_DOMAIN):
    """Bounded load: threads send per_thread messages each with a unique
    token, recording the tokens that got a 250."""
    lock = threading.Lock()

    def one():
        for _ in range(per_thread):
            if stop.is_set():
                return
            token = uuid.uuid4().hex
            msg = "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s\r\n" % (token, token,
                                                                           ("x" * 76 + "\r\n") * 26)
            try:
                with smtplib.SMTP("127.0.0.1", server.smtpd_port, timeout=10) as s:
                    s.sendmail("load@example.com", ["sink@%s" % rcpt_domain], msg)
                with lock:
                    acked.append(token)
            except (OSError, smtplib.SMTPException):
                pass  # the server is being killed: not acknowledged, may or may not arrive

    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    return ts


def delivered_tokens(server):
    counts = {}
    for d in ("new", "cur"):
        path = server.maildir(RCPT_DOMAIN, "sink") / d
        if not path.exists():
            continue
        for f in path.iterdir():
            for line in f.read_bytes().split(b"\r\n"):
                if line.startswith(b"Subject: "):
                    tok = line[9:].decode()
                    counts[tok] = counts.get(tok, 0) + 1
                    break
    return counts


def check_exactly_once(server, acked):
    assert acked, "the load produced no acknowledged message"
    ok = wait_for(lambda: all(t in delivered_tokens(server) for t in acked), timeout=60)
    counts = delivered_tokens(server)
    missing = [t for t in acked if t not in counts]
    assert ok and not missing, "acknowledged but lost: %s\n%s" % (missing, server.log_text()[-3000:])
    dups = {t: n for t, n in counts.items() if n > 1}
    assert not dups, "delivered more than once: %s" % dups


@pytest.mark.parametrize("kind", ["smtpd", "delivery"])
def test_kill_child_under_load(server, kind):
    """smtpd killed mid-transaction, or delivery killed while it delivers
    and smtpd goes on committing (its recovery must leave smtpd's commits
    in progress alone): every acknowledged message arrives, once."""
    acked, stop = [], threading.Event()
    ts = load(server, acked, stop)
    assert wait_for(lambda: len(acked) >= 20, timeout=60)
    os.kill(server.child_pids(kind)[0], signal.SIGKILL)
    for t in ts:
        t.join(timeout=120)
    # The supervisor logs the death when it reaps the child, which may come after the load ends.
    assert wait_for(lambda: "%s pid" % kind in server.log_text() and
                    "killed by signal 9" in server.log_text(), timeout=15), server.log_text()[-3000:]
    check_exactly_once(server, acked)


def test_kill_whole_server_under_load(server):
    acked, stop = [], threading.Event()
    ts = load(server, acked, stop)
    assert wait_for(lambda: len(acked) >= 20, timeout=60)
    kill_process_group(server.proc.pid)
    stop.set()
    for t in ts:
        t.join(timeout=120)
    server.proc.wait(timeout=10)
    server.proc = None
    server.logf.close()
    server.start()
    check_exactly_once(server, acked)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_answers_452_and_loses_nothing(server_factory, tmp_path):
    qdir = tmp_path / "smallqueue"
    qdir.mkdir()
    os.chmod(tmp_path, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(qdir)],
                   check=True)
    try:
        # queue_minfree 1: no refusal at MAIL FROM (test_robustness.py has
        # that), so the big message really runs into the full disk.
        srv = server_factory(extra={"queue_directory": str(qdir), "queue_minfree": "1",
                                    "message_size_limit": "4000000"})
        small = "Subject: small\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
            s.sendmail("a@example.com", ["sink@example.com"], small)
        # Fill the rest of the filesystem with one big message: refused with 452.
        big = "Subject: big\r\n\r\n" + ("y" * 998 + "\r\n") * 1000
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
            # Declared with SIZE=, it is refused at once (queue_minfree + SIZE).
            with pytest.raises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("a@example.com", ["sink@example.com"], big)
            assert e.value.smtp_code == 452 and b"4.3.1" in e.value.smtp_error, e.value
            # Undeclared, it runs into the full disk during DATA.
            s.ehlo()
            del s.esmtp_features["size"]
            with pytest.raises(smtplib.SMTPDataError) as e:
                s.sendmail("a@example.com", ["sink@example.com"], big)
            assert e.value.smtp_code == 452, e.value
            assert b"4.3.1" in e.value.smtp_error
            # The session is still usable after the refusal.
            s.sendmail("a@example.com", ["sink@example.com"], small.replace("small", "after"))
        assert wait_for(lambda: len(srv.messages("example.com", "sink")) == 2, timeout=30)
        # Nothing half-written remains in the queue.
        assert not os.listdir(qdir / "incoming")
    finally:
        srv_stop = [s for s in [locals().get("srv")] if s]
        for s in srv_stop:
            s.stop()
        subprocess.run(["umount", "-l", str(qdir)], check=False)


def test_kill_delivery_while_relaying(server_factory):
    """Relayed mail survives kill -9 too: every acknowledged message reaches
    the relay. A crash between the relay's 250 and our record's sync round
    may send one again (as with Postfix), so this counts at-least-once and
    bounds the duplicates by the one round in flight."""
    from smtppeer import Peer
    with Peer() as relay:
        srv = server_factory({"relayhost": "[127.0.0.1]:%d" % relay.port})
        acked, stop = [], threading.Event()
        ts = load(srv, acked, stop, rcpt_domain="remote.test")
        assert wait_for(lambda: len(relay.messages) >= 10, timeout=60), srv.log_text()[-3000:]
        os.kill(srv.child_pids("delivery")[0], signal.SIGKILL)
        for t in ts:
            t.join(timeout=120)
        assert wait_for(lambda: "killed by signal 9" in srv.log_text(), timeout=15), \
            srv.log_text()[-3000:]

        def relayed():
            counts = {}
            for m in list(relay.messages):
                for line in m.data.split(b"\r\n" if b"\r\n" in m.data else b"\n"):
                    if line.startswith(b"Subject: "):
                        tok = line[9:].decode()
                        counts[tok] = counts.get(tok, 0) + 1
                        break
            return counts
        assert acked
        ok = wait_for(lambda: all(t in relayed() for t in acked), timeout=60)
        missing = [t for t in acked if t not in relayed()]
        assert ok and not missing, "acknowledged but lost: %s\n%s" % (missing,
                                                                      srv.log_text()[-3000:])
        dups = sum(n - 1 for n in relayed().values())
        assert dups <= 20, "%d duplicates: more than one sync round's worth" % dups
        assert wait_for(lambda: "Mail queue is empty" in srv.cmd("queue").stdout, timeout=30)


def test_torn_tail_after_power_cut_is_cut_off_and_retried(server_factory):
    """What a power cut leaves after an unsynced deferral record (ext4
    commits the new size before the data: NULs; see test_powercut.py for the
    real cut): recovery keeps the committed records, cuts the tail off and
    retries the message instead of quarantining it."""
    from smtppeer import Peer
    relay = Peer()  # not started yet: connections refused
    srv = server_factory({"relayhost": "[127.0.0.1]:%d" % relay.port,
                          "minimal_backoff_time": "60s", "maximal_backoff_time": "120s"})
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        s.sendmail("a@example.com", ["rcpt@remote.test"], "Subject: torn\r\n\r\nbody\r\n")
    assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=30)
    srv.stop()
    active = srv.data / "queue" / "active"
    envs = [p for p in active.iterdir() if not p.name.endswith(".data")]
    assert len(envs) == 1
    # As the campaign found it: the records up to the commit record, then
    # NULs where the deferral's records were.
    text = envs[0].read_bytes()
    commit_end = text.index(b"\nC ") + 1
    commit_end = text.index(b"\n", commit_end) + 1
    assert commit_end < len(text), "no deferral records were appended"
    torn = len(text) - commit_end
    envs[0].write_bytes(text[:commit_end] + b"\0" * torn)
    with relay:
        srv.start()
        assert wait_for(lambda: len(relay.messages) == 1, timeout=30), srv.log_text()[-2000:]
    assert "cut a torn tail of %d bytes" % torn in srv.log_text()
    assert not os.listdir(srv.data / "queue" / "corrupt")
