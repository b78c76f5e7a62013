"""The long power-cut campaign (docs/queue.md, Durability), run by `make
durability`, not by `make test` (about 2 minutes): ten rounds of local
delivery under load with the power cut at a different point each time, and
cuts made 5, 17 and 29 s after a round of deferrals, when the appended
result records are most exposed (ext4 commits a file's new size every 5 s,
its data pages up to 30 s later). Every acknowledged message is delivered,
exactly once for Maildir; none is quarantined. test_powercut.py shows the
same cut losing mail when the syncs are taken away.

HONGYAN_POWERCUT_ROUNDS (default 10) and HONGYAN_POWERCUT_SEED (default:
random, printed) repeat a campaign."""
import os
import random
import smtplib
import threading
import time
import uuid

import pytest

from conftest import wait_for
from powercut import LoopExt4
from smtppeer import Peer
from test_durability import check_exactly_once, load
from test_powercut import cut_and_remount, cut_under_load, quarantined, subject_counts

pytestmark = pytest.mark.skipif(os.environ.get("HONGYAN_DURABILITY") != "1",
                                reason="the long power-cut campaign: make durability")

ROUNDS = int(os.environ.get("HONGYAN_POWERCUT_ROUNDS", "10"))
DEFERRAL_CUT_DELAYS = (5, 17, 29)


def campaign_random():
    seed = int(os.environ.get("HONGYAN_POWERCUT_SEED") or random.randrange(1 << 30))
    print("HONGYAN_POWERCUT_SEED=%d" % seed)
    return random.Random(seed)


def test_power_cut_rounds_under_load(server_factory, tmp_path):
    """ROUNDS cuts under load, each after a random number of 250s (10 to
    120), some while the first deliveries are being recorded, some deep in
    the load: every acknowledged message in the Maildir exactly once."""
    rnd = campaign_random()
    with LoopExt4(tmp_path / "disk") as fs:
        srv = server_factory({"data_directory": str(fs.mountpoint / "data")})
        srv.data = fs.mountpoint / "data"
        acked = []
        for rnd_no in range(ROUNDS):
            cut_under_load(fs, srv, acked, rnd.randint(10, 120), per_thread=40)
            srv.start()
            check_exactly_once(srv, acked)
            assert not quarantined(fs), "round %d: %s" % (rnd_no + 1, srv.log_text()[-3000:])
        print("%d rounds, %d acknowledged messages, none lost or doubled" % (ROUNDS, len(acked)))
        srv.stop()


def test_power_cut_after_deferrals(server_factory, tmp_path):
    """Each round: 20 messages to a relay that is down (deferred, their
    results appended without a sync of their own), local load beside them,
    the power cut DELAY s after the deferrals; then the relay comes up:
    every remote message reaches it, every local one is in the Maildir
    exactly once, nothing is quarantined."""
    with LoopExt4(tmp_path / "disk") as fs:
        relay_port = Peer().port  # not started: connections are refused
        srv = server_factory({
            "data_directory": str(fs.mountpoint / "data"),
            "relayhost": "[127.0.0.1]:%d" % relay_port,
            "minimal_backoff_time": "60s",
            "maximal_backoff_time": "120s",
        })
        srv.data = fs.mountpoint / "data"
        acked = []
        for delay in DEFERRAL_CUT_DELAYS:
            deferred_before = srv.log_text().count("status=deferred")
            tokens = []
            with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as s:
                for _ in range(20):
                    tok = uuid.uuid4().hex
                    s.sendmail("a@example.com", ["rcpt@remote.test"],
                               "Subject: %s\r\n\r\nbody\r\n" % tok)
                    tokens.append(tok)
            assert wait_for(lambda: srv.log_text().count("status=deferred") >= deferred_before + 20,
                            timeout=30), srv.log_text()[-3000:]
            deferred_at = time.monotonic()
            stop = threading.Event()
            ts = load(srv, acked, stop, per_thread=25)
            time.sleep(max(0.0, deferred_at + delay - time.monotonic()))
            cut_and_remount(fs, srv, stop, ts)
            with Peer(port=relay_port) as relay:
                srv.start()
                r = srv.cmd("queue", "flush")
                assert r.returncode == 0, r.stderr
                ok = wait_for(lambda: all(t in subject_counts(relay.messages) for t in tokens),
                              timeout=60)
                missing = [t for t in tokens if t not in subject_counts(relay.messages)]
                assert ok and not missing, "cut %d s after deferrals: %d lost; quarantined: %s\n%s" % (
                    delay, len(missing), quarantined(fs), srv.log_text()[-3000:])
                check_exactly_once(srv, acked)
                assert not quarantined(fs), srv.log_text()[-3000:]
                assert wait_for(lambda: "Mail queue is empty" in srv.cmd("queue").stdout,
                                timeout=30)
                srv.stop()
            srv.start()
        srv.stop()
