"""metrics_listen: GET /metrics checked by Prometheus' own promtool, the
counters moved exactly by the mail sent, the queue gauges, the HTTP bounds,
and no listener at all when the key is empty."""
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import free_port, wait_for

PROMTOOL = shutil.which("promtool")


def scrape(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.status, r.headers, r.read().decode()


def samples(text):
    """{'name{labels}': value} from the exposition text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def raw_request(port, data, read_timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def metrics_server(server_factory, extra=None):
    port = free_port()
    settings = {"metrics_listen": "127.0.0.1:%d" % port}
    settings.update(extra or {})
    srv = server_factory(settings)
    srv.metrics_port = port
    return srv


def send(srv, n, rcpt="bob@example.com", one_connection=False):
    def one(c, i):
        c.sendmail("alice@example.com", [rcpt],
                   "From: alice@example.com\r\nTo: %s\r\nSubject: m%d\r\n\r\nbody %d\r\n"
                   % (rcpt, i, i))
    if one_connection:
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
            for i in range(n):
                one(c, i)
    else:
        for i in range(n):
            with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
                one(c, i)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_the_exposition(server_factory):
    srv = metrics_server(server_factory)
    send(srv, 2)
    assert wait_for(lambda: len(srv.messages("example.com", "bob")) == 2)
    status, headers, text = scrape(srv.metrics_port)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    # promtool prints lint problems and exits 1 for any of them.
    assert r.returncode == 0, r.stdout + r.stderr
    for family in ("hongyan_messages_received_total", "hongyan_messages_delivered_total",
                   "hongyan_spool_commit_seconds_bucket", "hongyan_message_size_bytes_bucket",
                   "hongyan_delivery_seconds_count", "hongyan_queue_messages",
                   "hongyan_tls_handshakes_total", "hongyan_inbound_auth_results_total"):
        assert family in text


def test_counters_move_by_exactly_n_and_scrapes_are_not_connections(server_factory):
    srv = metrics_server(server_factory)
    before = samples(scrape(srv.metrics_port)[2])
    accepted = 'hongyan_connections_accepted_total{listener="smtpd"}'
    received = 'hongyan_messages_received_total{listener="smtpd"}'
    delivered = 'hongyan_messages_delivered_total{transport="local"}'
    n = 7
    send(srv, n)
    assert wait_for(lambda: len(srv.messages("example.com", "bob")) == n)
    # The delivery counter moves when the result is recorded, just after the file lands.
    assert wait_for(lambda: samples(scrape(srv.metrics_port)[2])[delivered] == before[delivered] + n)
    for _ in range(3):
        after = samples(scrape(srv.metrics_port)[2])
    assert after[received] - before[received] == n
    assert after[delivered] - before[delivered] == n
    assert after["hongyan_recipients_accepted_total"] - before["hongyan_recipients_accepted_total"] == n
    # n SMTP connections; the scrapes in between moved nothing.
    assert after[accepted] - before[accepted] == n
    assert after["hongyan_spool_commit_seconds_count"] - before["hongyan_spool_commit_seconds_count"] == n
    assert after["hongyan_message_size_bytes_count"] - before["hongyan_message_size_bytes_count"] == n
    assert after["hongyan_delivery_seconds_count"] - before["hongyan_delivery_seconds_count"] == n
    assert after['hongyan_queue_messages{state="active"}'] == 0
    assert after['hongyan_queue_messages{state="deferred"}'] == 0
    assert after["hongyan_sessions_open"] == 0
    # Inbound checks ran for none of these (mynetworks), so no result moved.
    assert after['hongyan_inbound_auth_results_total{method="spf",result="none"}'] == 0



@pytest.mark.parametrize("kind", ["smtpd", "delivery"])
def test_counters_outlive_a_killed_child(server_factory, kind):
    """The counters sit in the supervisor's shared region (metrics.h), which
    smtpd and delivery both add to: either killed with SIGKILL and restarted
    carries on from its predecessor's numbers, as Prometheus expects of a
    counter, and the page smtpd serves shows delivery's counts."""
    srv = metrics_server(server_factory)
    received = 'hongyan_messages_received_total{listener="smtpd"}'
    delivered = 'hongyan_messages_delivered_total{transport="local"}'
    send(srv, 3)
    assert wait_for(lambda: samples(scrape(srv.metrics_port)[2])[delivered] == 3)
    before = samples(scrape(srv.metrics_port)[2])
    old = wait_for(lambda: srv.child_pids(kind))[0]
    readies = srv.log_text().count("ready:")
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: [p for p in srv.child_pids(kind) if p != old], timeout=15), \
        srv.log_text()
    assert wait_for(lambda: srv.log_text().count("ready:") > readies, timeout=15), srv.log_text()
    after = samples(scrape(srv.metrics_port)[2])
    assert after[received] == before[received] == 3
    assert after["hongyan_spool_commit_seconds_count"] == 3
    send(srv, 2)
    assert wait_for(lambda: samples(scrape(srv.metrics_port)[2])[delivered] == 5)
    assert samples(scrape(srv.metrics_port)[2])[received] == 5
    assert "cannot map the shared counters" not in srv.log_text()


def status_tables(page):
    """The status page's recent rows (time, recipient, outcome), its domain
    rows and its per-30-minutes totals, as the HTML shows them."""
    recent = re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td><td class=(\w+)>", page)
    domains = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td></tr>",
                         page)
    rates = dict(re.findall(r"<span class=lbl>(\w+)</span>.*?<span class=num>(\d+) in 30 min",
                            page))
    return recent, domains, rates


def test_status_tables_outlive_a_killed_delivery(server_factory):
    """The status page's delivery tables and per-minute rates sit in the
    shared region too (metrics_tables.h): after SIGKILL of delivery (their writer) the
    page still shows the deliveries made before, row for row, and the new
    delivery adds to the same rows."""
    srv = metrics_server(server_factory)
    send(srv, 3)
    assert wait_for(lambda: "example.com</td><td>3</td>" in scrape(srv.metrics_port, "/")[2])
    recent, domains, rates = status_tables(scrape(srv.metrics_port, "/")[2])
    assert [r[1:] for r in recent] == [("bob@example.com", "sent")] * 3
    assert domains == [("example.com", "3", "0", "0")]
    assert rates["received"] == "3" and rates["sent"] == "3", rates
    old = wait_for(lambda: srv.child_pids("delivery"))[0]
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: [p for p in srv.child_pids("delivery") if p != old], timeout=15), \
        srv.log_text()
    assert wait_for(lambda: srv.log_text().count("ready:") >= 3, timeout=15), srv.log_text()
    # The same rows, times included: kept, not rebuilt from the log or the queue.
    assert status_tables(scrape(srv.metrics_port, "/")[2]) == (recent, domains, rates)
    send(srv, 2, rcpt="carol@example.com")
    assert wait_for(lambda: "example.com</td><td>5</td>" in scrape(srv.metrics_port, "/")[2])
    recent2, domains2, rates2 = status_tables(scrape(srv.metrics_port, "/")[2])
    assert [r[1:] for r in recent2] == [("carol@example.com", "sent")] * 2 + \
        [("bob@example.com", "sent")] * 3
    assert recent2[2:] == recent
    assert domains2 == [("example.com", "5", "0", "0")]
    assert rates2["received"] == "5" and rates2["sent"] == "5", rates2

def test_pflogsumm_counts_match_the_metrics(server_factory):
    pflogsumm = shutil.which("pflogsumm")
    if pflogsumm is None:
        pytest.skip("pflogsumm is not installed")
    srv = metrics_server(server_factory)
    n = 4
    send(srv, n, one_connection=True)
    assert wait_for(lambda: len(srv.messages("example.com", "bob")) == n)
    m = {}
    def delivered():
        m.update(samples(scrape(srv.metrics_port)[2]))
        return m['hongyan_messages_delivered_total{transport="local"}'] == n
    assert wait_for(delivered)
    r = subprocess.run([pflogsumm, "--syslog-name=hongyan", "--detail", "0", str(srv.tmp / "maillog")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = {}
    for line in r.stdout.splitlines():
        mm = re.match(r"\s*(\d+)\s+(received|delivered|deferred|bounced)\s*$", line)
        if mm:
            got[mm.group(2)] = int(mm.group(1))
    assert got.get("received") == m['hongyan_messages_received_total{listener="smtpd"}'] == n, r.stdout
    assert got.get("delivered") == n, r.stdout
    assert got.get("bounced", 0) == 0


def test_queue_gauge_equals_the_deferred_count(server_factory):
    dead = free_port()
    srv = metrics_server(server_factory, {
        "relayhost": "[127.0.0.1]:%d" % dead,
        "minimal_backoff_time": "300s", "maximal_backoff_time": "600s",
        "queue_run_delay": "300s"})
    send(srv, 3, rcpt="carol@remote.test")
    state = 'hongyan_queue_messages{state="deferred"}'
    deferred = 'hongyan_messages_deferred_total{transport="remote"}'
    m = {}
    def all_deferred():
        m.update(samples(scrape(srv.metrics_port)[2]))
        return m[state] == 3
    assert wait_for(all_deferred, timeout=20), m
    assert m['hongyan_queue_messages{state="active"}'] == 0
    assert m['hongyan_queue_bytes{state="deferred"}'] > 3 * 60
    # A deferral is not a final result: no delivery latency observed.
    assert m["hongyan_delivery_seconds_count"] == 0
    assert m[deferred] + m['hongyan_messages_deferred_total{transport="none"}'] >= 3
    # The same queue for scripts, in Postfix's postqueue -j shape.
    entries = [json.loads(line) for line in srv.cmd("queue", "--json").stdout.splitlines()]
    assert len(entries) == 3
    for e in entries:
        assert e["queue_name"] == "deferred" and e["sender"] == "alice@example.com"
        assert e["recipients"][0]["address"] == "carol@remote.test"
        assert e["recipients"][0]["delay_reason"]
        assert e["message_size"] > 60 and e["arrival_time"] > 0
    ids = [e["queue_id"] for e in entries]
    oldest = re.search(r"Oldest deferred message: <b>(\w+)</b>", scrape(srv.metrics_port, "/")[2])
    assert oldest and oldest.group(1) in ids
    # Held: counted once, under hold (smtpd's count of hold/), no longer deferred (the
    # queue manager forgets it at the wake-up the hold command sends, not at its next try).
    assert srv.cmd("queue", "hold", ids[0]).returncode == 0
    def moved():
        m.update(samples(scrape(srv.metrics_port)[2]))
        return m['hongyan_queue_messages{state="hold"}'] == 1 and m[state] == 2
    assert wait_for(moved, timeout=10), m
    assert m['hongyan_queue_bytes{state="hold"}'] > 60
    held = [json.loads(line) for line in srv.cmd("queue", "list", "--json").stdout.splitlines()]
    assert sorted(e["queue_name"] for e in held) == ["deferred", "deferred", "hold"]
    # The gauges are delivery's, in the shared region: a new delivery process replaces what
    # its predecessor left there. The deferred ones are deleted while delivery is stopped
    # (it hears no wake-up), then it is killed: its successor finds none and says so.
    old = wait_for(lambda: srv.child_pids("delivery"))[0]
    os.kill(old, signal.SIGSTOP)
    try:
        for qid in ids[1:]:
            assert srv.cmd("queue", "delete", qid).returncode == 0
        assert samples(scrape(srv.metrics_port)[2])[state] == 2  # the stopped writer's numbers
    finally:
        os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: [p for p in srv.child_pids("delivery") if p != old], timeout=15), \
        srv.log_text()
    def republished():
        m.update(samples(scrape(srv.metrics_port)[2]))
        return m[state] == 0 and m['hongyan_queue_bytes{state="deferred"}'] == 0
    assert wait_for(republished, timeout=15), m
    assert m['hongyan_queue_messages{state="hold"}'] == 1
    assert "Oldest deferred message: none" in scrape(srv.metrics_port, "/")[2]
    assert srv.cmd("queue", "delete", "ALL").returncode == 0
    def empty():
        s = samples(scrape(srv.metrics_port)[2])
        return all(s['hongyan_queue_messages{state="%s"}' % st] == 0
                   for st in ("active", "deferred", "hold"))
    assert wait_for(empty, timeout=15)


def test_http_bounds(server_factory):
    srv = metrics_server(server_factory)
    p = srv.metrics_port
    assert raw_request(p, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        "HTTP/1.1 405 ")
    assert raw_request(p, b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        "HTTP/1.1 404 ")
    assert raw_request(p, b"GET /metrics HTTP/2.0\r\n\r\n").startswith("HTTP/1.1 505 ")
    assert raw_request(p, b"GET /metrics HTTP/1.0\r\n\r\n").startswith("HTTP/1.1 505 ")
    assert raw_request(p, b"garbage\r\n\r\n").startswith("HTTP/1.1 400 ")
    big = b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw_request(p, big).startswith("HTTP/1.1 431 ")
    # One request per connection: whatever follows is not answered.
    two = raw_request(p, b"GET /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n")
    assert two.count("HTTP/1.1 200") == 1 and "Connection: close" in two
    # A client that sends nothing is let go, and mail still flows meanwhile.
    idle = socket.create_connection(("127.0.0.1", p))
    send(srv, 1)
    assert wait_for(lambda: len(srv.messages("example.com", "bob")) == 1)
    idle.close()
    assert scrape(p)[0] == 200


def listening_ports(pid):
    """TCP ports that the process tree rooted at pid listens on."""
    pids = {str(pid)}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if f.read().split(") ", 1)[1].split()[1] == str(pid):
                        pids.add(d)
            except OSError:
                pass
    inodes = set()
    for p in pids:
        try:
            for fd in os.listdir("/proc/%s/fd" % p):
                try:
                    link = os.readlink("/proc/%s/fd/%s" % (p, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_no_metrics_listener_unless_configured(server_factory):
    srv = server_factory()
    ports = listening_ports(srv.proc.pid)
    assert ports == {srv.smtpd_port, srv.submission_port}, ports


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_status_page_html(server_factory):
    dead = free_port()
    srv = metrics_server(server_factory, {
        "transport_maps": "inline:{remote.test=smtp:[127.0.0.1]:%d}" % dead,
        "minimal_backoff_time": "300s", "maximal_backoff_time": "600s"})
    send(srv, 3)
    # An address with markup in it must come out as text, not as markup.
    send(srv, 1, rcpt='"<b>x</b>"@remote.test')
    assert wait_for(lambda: len(srv.messages("example.com", "bob")) == 3)
    def settled():
        # The counters move when each result is recorded, just after the file lands.
        page = scrape(srv.metrics_port, "/")[2]
        return re.search(r"id=queue-deferred>(\d+)<", page).group(1) == "1" and \
            "example.com</td><td>3</td>" in page
    assert wait_for(settled, timeout=20)
    status, headers, page = scrape(srv.metrics_port, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<script" not in page.lower()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "bob@example.com" in page and "delivered to maildir" in page
    assert page.count("<svg") == 4 and "<polyline" in page
    assert "Oldest deferred message: <b>" in page
    assert "Connection refused" in page or "connect" in page.lower()
    assert "example.com</td><td>3</td>" in page
    assert "src=" not in page and "href='http" not in page  # no external asset


def test_status_page_in_a_real_browser(server_factory, tmp_path):
    browser = chromium_binary()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    srv = metrics_server(server_factory)
    send(srv, 2)
    assert wait_for(lambda: samples(scrape(srv.metrics_port)[2])[
        'hongyan_messages_delivered_total{transport="local"}'] == 2)
    shot = tmp_path / "status.png"
    profile = tmp_path / "chromium-profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--user-data-dir=%s" % profile, "--window-size=1100,1000",
           "--screenshot=%s" % shot, "http://127.0.0.1:%d/" % srv.metrics_port]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10000, r.stderr[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # The DOM as the browser built it: the page parsed into the tables and SVGs we sent.
    dom = subprocess.run(cmd[:-2] + ["--dump-dom", "http://127.0.0.1:%d/" % srv.metrics_port],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") == 4 and "bob@example.com" in dom
    keep = os.environ.get("HONGYAN_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, os.path.join(keep, "status.png"))


def test_a_discarded_message_costs_one_sync_round_a_relayed_one_two(server_factory, tmp_path):
    """Issue 13: with one session each message pays for its own syncs. A
    message routed to discard: needs one round (its commit): redoing a
    discard after a crash harms no one, so it is removed without syncing
    its result. A message a remote server accepted needs a second round
    before it goes, so that a crash does not send it twice (docs/queue.md,
    Results)."""
    from smtppeer import Peer
    n = 6
    with Peer(tmp=tmp_path) as relay:
        srv = metrics_server(server_factory, {
            "transport_maps": "inline:{ void.example = discard:, relayed.example = smtp:[127.0.0.1]:%d }"
                              % relay.port,
            "relay_domains": "void.example relayed.example",
            "smtp_tls_security_level": "none"})
        rounds = "hongyan_spool_sync_rounds_total"

        def one_at_a_time(domain):
            before = samples(scrape(srv.metrics_port)[2])[rounds]
            for i in range(n):
                removed = srv.log_text().count(": removed")
                send(srv, 1, rcpt="x%d@%s" % (i, domain))
                # One message in the queue at a time: no round is shared.
                assert wait_for(lambda: srv.log_text().count(": removed") == removed + 1)
            return samples(scrape(srv.metrics_port)[2])[rounds] - before

        assert one_at_a_time("void.example") == n
        assert "status=sent (discarded)" in srv.log_text()
        assert one_at_a_time("relayed.example") == 2 * n
        assert len(relay.messages) == n
