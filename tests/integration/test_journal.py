"""The spool's journal (docs/queue.md, "The journal"): small messages are
committed as records appended to a segment under queue_directory/journal/,
delivered from there, marked in the segment's done-log, and moved to
active/ as files only when they must stay (a deferral). Larger messages
still take two files. Checked against the real binary with smtplib: what
is on disk after each step, recovery after delivery is killed, a damaged
record quarantined, and the queue commands."""
import os
import re
import signal
import smtplib
import struct
import uuid

from conftest import wait_for
from smtppeer import Peer
from test_powercut import subject_counts

DISCARD = {"transport_maps": "inline:{ * = discard: }"}


def queue_dir(srv):
    return srv.data / "queue"


def send(srv, n, size=200, rcpt="bob@example.com"):
    tokens = []
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
        for _ in range(n):
            tok = uuid.uuid4().hex
            lines = "".join("x" * 78 + "\r\n" for _ in range(size // 80 + 1))
            body = "Subject: %s\r\n\r\n%s" % (tok, lines)
            s.sendmail("a@example.com", [rcpt], body)
            tokens.append(tok)
    return tokens


def segments(srv):
    j = queue_dir(srv) / "journal"
    return sorted(p.name for p in j.iterdir() if p.name.endswith(".seg")) if j.exists() else []


def done_records(srv, seg):
    """(kind, offset) of each done-log record (32 bytes: magic, kind, seq, offset, crc)."""
    p = queue_dir(srv) / "journal" / seg.replace(".seg", ".done")
    if not p.exists():
        return []
    data = p.read_bytes()
    out = []
    for i in range(0, len(data) - len(data) % 32, 32):
        magic, kind = struct.unpack_from("<IB", data, i)
        if magic == 0x444A5948:
            out.append((kind, struct.unpack_from("<Q", data, i + 16)[0]))
    return out


def active_files(srv):
    return sorted(os.listdir(queue_dir(srv) / "active"))


def test_small_messages_go_through_the_journal(server_factory):
    srv = server_factory(DISCARD)
    send(srv, 20)
    assert wait_for(lambda: srv.log_text().count(": removed") >= 20, timeout=30), \
        srv.log_text()[-3000:]
    segs = segments(srv)
    assert len(segs) == 1, segs
    assert wait_for(lambda: len(done_records(srv, segs[0])) == 20)
    assert all(kind == 1 for kind, _ in done_records(srv, segs[0]))
    assert active_files(srv) == []
    # Nothing was ever created in incoming/ for them, nor renamed into active/.
    assert os.listdir(queue_dir(srv) / "incoming") == []
    assert (queue_dir(srv) / "spool-version").read_text() == "hongyan-spool 2\n"


def test_a_large_message_takes_the_files(server_factory):
    srv = server_factory(DISCARD)
    send(srv, 1, size=70000)  # more than the 64 KB receive buffer
    send(srv, 1)
    assert wait_for(lambda: srv.log_text().count(": removed") >= 2, timeout=30)
    segs = segments(srv)
    # Only the small one is in the journal.
    assert wait_for(lambda: len(done_records(srv, segs[0])) == 1)


def test_a_deferred_message_moves_to_active(server_factory):
    dead = Peer().port  # never started: every delivery is deferred
    srv = server_factory({"relayhost": "[127.0.0.1]:%d" % dead,
                          "minimal_backoff_time": "60s", "maximal_backoff_time": "120s"})
    tokens = send(srv, 3, rcpt="rcpt@remote.test")
    assert wait_for(lambda: srv.log_text().count("status=deferred") >= 3, timeout=30)
    assert wait_for(lambda: len([f for f in active_files(srv) if not f.endswith(".data")]) == 3)
    seg = segments(srv)[0]
    assert sorted(k for k, _ in done_records(srv, seg)) == [2, 2, 2]  # moved
    listing = srv.cmd("queue").stdout
    assert listing.count("rcpt@remote.test") == 3
    qid = [f for f in active_files(srv) if not f.endswith(".data")][0]
    env = (queue_dir(srv) / "active" / qid).read_text()
    assert env.startswith("HONGYAN-ENVELOPE 2\n") and "\nC " in env
    # Files now: the operator's commands work as they always did.
    assert srv.cmd("queue", "hold", qid).returncode == 0
    assert srv.cmd("queue", "release", qid).returncode == 0
    with Peer(port=dead) as relay:
        assert srv.cmd("queue", "flush").returncode == 0
        assert wait_for(lambda: len(relay.messages) >= 3, timeout=30), srv.log_text()[-3000:]
        assert all(t in subject_counts(relay.messages) for t in tokens)


def test_killed_delivery_takes_the_journal_again(server_factory):
    srv = server_factory(DISCARD)
    delivery = srv.child_pids("delivery")[0]
    os.kill(delivery, signal.SIGSTOP)
    try:
        tokens = send(srv, 10)
        listing = srv.cmd("queue").stdout  # the queue command reads the journal too
        assert listing.count("bob@example.com") == 10, listing
        qid = re.search(r"^([0-9A-V]{15})\b", listing, re.M).group(1)
        shown = srv.cmd("queue", "show", qid)
        assert shown.returncode == 0 and "*** MESSAGE CONTENTS" in shown.stdout, shown
        assert sum(("Subject: %s" % t) in shown.stdout for t in tokens) == 1
        r = srv.cmd("queue", "hold", qid)
        assert r.returncode != 0 and "in the journal" in r.stderr, r.stderr
        r = srv.cmd("queue", "delete", "ALL")
        assert "Deleted: 0 messages" in r.stdout and r.stderr.count("in the journal") == 10, r
    finally:
        os.kill(delivery, signal.SIGKILL)  # a stopped process dies of it too
    assert wait_for(lambda: srv.log_text().count(": removed") >= 10, timeout=30), \
        srv.log_text()[-3000:]
    assert len(tokens) == 10
    seg = segments(srv)[0]
    assert wait_for(lambda: len(done_records(srv, seg)) == 10)
    # Delivered once each: a second start finds them all done.
    srv.stop()
    removed = srv.log_text().count(": removed")
    srv.start()
    send(srv, 1)
    assert wait_for(lambda: srv.log_text().count(": removed") >= removed + 1, timeout=30)
    srv.stop()
    assert srv.log_text().count(": removed") == removed + 1


def test_delivered_from_the_journal_to_maildir_and_relay(server_factory):
    """Neither a Maildir delivery nor a relay needs the message as files:
    both read its range of the segment, and it is marked done, not moved."""
    with Peer() as relay:
        srv = server_factory({"transport_maps": "inline:{ remote.test = smtp:[127.0.0.1]:%d }"
                              % relay.port})
        local = send(srv, 3, size=3000, rcpt="sink@example.com")
        remote = send(srv, 3, size=3000, rcpt="rcpt@remote.test")
        assert wait_for(lambda: srv.log_text().count(": removed") >= 6, timeout=30), \
            srv.log_text()[-3000:]
        assert "status=deferred" not in srv.log_text()
        counts = subject_counts(relay.messages)
        assert all(counts.get(t) == 1 for t in remote), counts
    files = srv.messages("example.com", "sink")
    got = [f.read_bytes() for f in files]
    assert len(got) == 3
    for tok in local:
        body = [g for g in got if ("Subject: %s" % tok).encode() in g]
        assert len(body) == 1 and body[0].endswith(("x" * 78 + "\r\n").encode())
    seg = segments(srv)[0]
    assert wait_for(lambda: len(done_records(srv, seg)) == 6)
    assert all(kind == 1 for kind, _ in done_records(srv, seg))
    assert active_files(srv) == []
