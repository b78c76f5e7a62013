"""Two hongyan nodes behind one HAProxy frontend (PROXY v2, smtpchk health
checks with LOCAL headers), both reading the same PostgreSQL tables and
delivering to one Dovecot over LMTP (docs/scale-out.md). 200 messages go
through HAProxy; node 1 gets SIGTERM in the middle while its queue holds
mail; that mail waits for node 1, and once it is back every acknowledged
message is in Dovecot exactly once."""
import pathlib
import re
import shutil
import smtplib
import threading
import time

import pytest

import pgserver
from conftest import free_port, wait_for, wait_port
from test_lmtp import Dovecot
from test_proxy import HAPROXY

pytestmark = pytest.mark.skipif(HAPROXY is None or not pgserver.available(),
                                reason="haproxy, PostgreSQL 15 and root needed")

TOTAL = 200
USERS = 10


class Balancer:
    def __init__(self, tmp, ports):
        import subprocess
        import tempfile
        self.port = free_port()
        # Unix socket paths are limited to 107 octets: a short directory.
        self.sockdir = tempfile.mkdtemp(prefix="hylb", dir="/tmp")
        self.stats = pathlib.Path(self.sockdir) / "lb.sock"
        servers = "\n".join(
            "    server n%d 127.0.0.1:%d send-proxy-v2 check check-send-proxy inter 200ms "
            "fall 1 rise 2" % (i + 1, p) for i, p in enumerate(ports))
        cfg = tmp / "lb.cfg"
        cfg.write_text(f"""
global
    stats socket {self.stats} mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
frontend smtp
    bind 127.0.0.1:{self.port}
    default_backend nodes
backend nodes
    balance roundrobin
    option smtpchk EHLO lb.test
{servers}
""")
        self.log = open(tmp / "lb.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        wait_for(self.stats.exists)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def send_one(port, i, acked):
    msg = ("From: alice@sender.test\r\nTo: u%d@virt.test\r\nSubject: scale-out %d\r\n"
           "Message-ID: <so-%d@sender.test>\r\n\r\nmessage %d\r\n" % (i % USERS, i, i, i))
    for attempt in range(20):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                c.sendmail("alice@sender.test", ["u%d@virt.test" % (i % USERS)], msg)
            acked.add(i)
            return
        except (smtplib.SMTPException, OSError):
            time.sleep(0.2)  # the balancer has not noticed the stopped node yet


def delivered_subjects(dovecot):
    counts = {}
    for u in range(USERS):
        for f in dovecot.messages("virt.test", "u%d" % u):
            m = re.search(rb"^Subject: scale-out (\d+)\r?$", f.read_bytes(), re.M)
            if m:
                counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


def test_two_nodes_behind_haproxy(server_factory, tmp_path):
    pg = pgserver.PgServer()
    dovecot = Dovecot()
    lb = None
    try:
        pg.psql(pgserver.MAIL_SCHEMA)
        pg.psql("SET ROLE mail;" + "".join(
            "INSERT INTO mailbox VALUES ('u%d@virt.test', 'virt.test/u%d/', true);" % (u, u)
            for u in range(USERS)), db="mail")
        cf = pgserver.table_file(tmp_path / "mailbox.cf", pg,
                                 "SELECT maildir FROM mailbox WHERE username='%s' AND active")
        nodes = []
        for n in (1, 2):
            nodes.append(server_factory({
                "myhostname": "node%d.virt.test" % n,
                "mydestination": "$myhostname, localhost",
                "virtual_mailbox_domains": "virt.test",
                "virtual_mailbox_maps": "pgsql:%s" % cf,
                "virtual_transport": "lmtp:inet:127.0.0.1:%d" % dovecot.port,
                "smtpd_upstream_proxy_protocol": "haproxy",
                "smtpd_peername_lookup": "no",
                "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
                "queue_run_delay": "1s",
            }, name="node%d" % n))
        lb = Balancer(tmp_path, [n.smtpd_port for n in nodes])
        stats = lambda: lb_status(lb)
        assert wait_for(lambda: stats() == {"n1": "UP", "n2": "UP"}, timeout=20), stats()
        xact_before = db_transactions(pg)

        # Dovecot is down: every message waits in the queue of the node that took it.
        acked = set()
        stopper = None
        start = time.monotonic()
        for i in range(TOTAL):
            if i == TOTAL // 2:
                stopper = threading.Thread(target=nodes[0].stop)
                stopper.start()
            send_one(lb.port, i, acked)
        stopper.join(timeout=60)
        elapsed = time.monotonic() - start
        assert len(acked) == TOTAL, sorted(set(range(TOTAL)) - acked)
        on_node = [queued_subjects(n) for n in nodes]
        assert on_node[0] and on_node[1], "both nodes took mail"
        assert not (on_node[0] & on_node[1])
        # After the stop, only node 2 took mail.
        assert max(on_node[0]) < TOTAL // 2 + 5

        # Mail flows again: node 2 delivers its part, node 1's waits for node 1.
        dovecot.start()
        nodes[1].cmd("queue", "flush")
        assert wait_for(lambda: set(delivered_subjects(dovecot)) >= on_node[1], timeout=60)
        assert not (set(delivered_subjects(dovecot)) & on_node[0])

        # Node 1 comes back and resumes its own spool.
        nodes[0].start()
        assert wait_for(lambda: set(delivered_subjects(dovecot)) == acked, timeout=90), \
            sorted(acked - set(delivered_subjects(dovecot)))
        time.sleep(1)  # a late duplicate would show up now
        counts = delivered_subjects(dovecot)
        assert all(c == 1 for c in counts.values()), {k: c for k, c in counts.items() if c > 1}
        assert set(counts) == acked
        per_msg = (db_transactions(pg) - xact_before) / TOTAL
        print("\nscale-out: %d messages through HAProxy in %.1fs (%.0f/s), node1 %d, node2 %d, "
              "database transactions per message %.2f"
              % (TOTAL, elapsed, TOTAL / elapsed, len(on_node[0]), len(on_node[1]), per_msg))
        # Every node logged the real client (HAProxy's health checks used LOCAL).
        for n in nodes:
            assert "client=unknown[127.0.0.1]" in n.log_text()
    finally:
        if lb:
            lb.stop()
        dovecot.cleanup()
        pg.destroy()


def lb_status(lb):
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(lb.stats))
        s.sendall(b"show stat\n")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    status = {}
    for line in out.decode().splitlines():
        cols = line.split(",")
        if len(cols) > 17 and cols[0] == "nodes" and cols[1].startswith("n"):
            status[cols[1]] = cols[17]
    return status


def queued_subjects(node):
    """Subjects of the messages in a node's queue (read from its spool's data files)."""
    found = set()
    for f in (node.data / "queue").rglob("*"):
        if f.is_file():
            try:
                m = re.search(rb"^Subject: scale-out (\d+)\r?$", f.read_bytes(), re.M)
            except OSError:
                continue
            if m:
                found.add(int(m.group(1)))
    return found


def db_transactions(pg):
    out = pg.psql("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                  "WHERE datname = 'mail';\n", db="mail")
    return int(re.search(r"(\d+)", out.splitlines()[2] if len(out.splitlines()) > 2 else out)
               .group(1))


def test_rescue_instance_delivers_a_dead_nodes_queue(server_factory):
    """docs/scale-out.md: a node that will not come back has its queue
    delivered by a second instance run on that queue_directory."""
    dead_lmtp = free_port()
    node = server_factory({"virtual_mailbox_domains": "virt.test",
                           "virtual_transport": "lmtp:inet:127.0.0.1:%d" % dead_lmtp,
                           "smtpd_peername_lookup": "no",
                           "minimal_backoff_time": "300s", "maximal_backoff_time": "600s"},
                          name="dead")
    n = 5
    with smtplib.SMTP("127.0.0.1", node.smtpd_port, timeout=30) as c:
        for i in range(n):
            c.sendmail("alice@sender.test", ["u%d@virt.test" % i],
                       "From: alice@sender.test\r\nSubject: rescue %d\r\n\r\nhi\r\n" % i)
    assert wait_for(lambda: node.tmp.joinpath("maillog").read_text().count("status=deferred")
                    >= n, timeout=30)
    node.stop()
    queue = node.data / "queue"
    rescue = server_factory({"virtual_mailbox_domains": "virt.test",
                             "queue_directory": str(queue),
                             "smtpd_peername_lookup": "no"}, name="rescue")
    # The envelopes keep their retry times: flush, as the docs say.
    assert rescue.cmd("queue", "flush").returncode == 0
    for i in range(n):
        assert wait_for(lambda: len(rescue.messages("virt.test", "u%d" % i)) == 1, timeout=30), \
            rescue.log_text()[-2000:]
    assert wait_for(lambda: "Mail queue is empty" in rescue.cmd("queue").stdout, timeout=20)
