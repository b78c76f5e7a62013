"""Outbound delivery end to end: the real hongyan server delivering to real
SMTP peers (aiosmtpd) on loopback, found through a dnslib DNS server the
test runs (MX, A, null MX), or through a relayhost that requires STARTTLS
and AUTH, configured with the Postfix lines from SPEC.md with only the
host and port changed.

Recipients are at example.net/example.com (remote); senders at local.test,
which is local, so bounces (DSNs) land in the sender's Maildir. Names the
DNS server answers are under example.com/example.net: unbound answers
names under .test itself (an RFC 6761 local zone) without asking.
"""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import BIN, free_port, wait_for, wait_port
from dnsserver import DNSServer
from smtppeer import Peer

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
}


def maillog(srv):
    p = srv.tmp / "maillog"
    return p.read_text(errors="replace") if p.exists() else ""


def logs(srv):
    """The server's log (stderr; maillog_file has the same lines)."""
    return srv.log_text()


def sendmail(srv, rcpts, body="Subject: test\n\ntest email\n", sender="alice@local.test"):
    r = srv.cmd("sendmail", "-f", sender, *rcpts, input=body)
    assert r.returncode == 0, r.stderr
    return r


def queue_ids(srv):
    out = srv.cmd("queue").stdout
    return re.findall(r"^([0-9A-Z]{8,})\b", out, re.M)


def dsn_messages(srv, local="alice", domain="local.test"):
    return [p.read_text(errors="replace") for p in srv.messages(domain, local)]


def make_server(server_factory, dns, extra=None, start=True):
    settings = dict(LOCAL)
    if dns is not None:
        settings["dns_resolver"] = dns.address
    settings.update(extra or {})
    return server_factory(extra=settings, start=start)


def password_map(srv, lines):
    path = srv.tmp / "sasl_passwd"
    path.write_text("".join(l + "\n" for l in lines))
    os.chmod(path, 0o644)
    r = srv.cmd("map", "build", "hash:%s" % path)
    assert r.returncode == 0, r.stderr
    for p in srv.tmp.iterdir():
        if p.name.startswith("sasl_passwd"):
            os.chmod(p, 0o644)
    return path


def test_relayhost_starttls_auth_with_the_postfix_lines(server_factory, tmp_path):
    """The six SPEC.md lines, host and port changed; `echo ... | sendmail rcpt`."""
    with Peer(tmp=tmp_path, tls=True, require_starttls=True,
              users={"api-key": "secret-key"}) as relay, \
            DNSServer({"relay.example.com": [("A", "127.0.0.1")]}) as dns:
        srv = make_server(server_factory, dns, {
            "relayhost": "relay.example.com:%d" % relay.port,
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "hash:%s" % (tmp_path / "srv0" / "sasl_passwd"),
            "smtp_sasl_security_options": "noanonymous",
            "smtp_tls_security_level": "may",
            "header_size_limit": "4096000",
        }, start=False)
        password_map(srv, ["relay.example.com:%d  api-key:secret-key" % relay.port])
        srv.start()
        # The sendmail command, by that name, as applications call it.
        link = srv.tmp / "sendmail"
        os.symlink(BIN, link)
        env = dict(os.environ, HONGYAN_CONFIG=str(srv.cfg))
        r = subprocess.run("echo 'test email' | %s someone@example.com" % link, shell=True,
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        msg = relay.messages[0]
        assert msg.rcpt_tos == ["someone@example.com"]
        assert b"test email" in msg.data
        assert relay.auth_ok == [("api-key", "PLAIN")]
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=10), logs(srv)
        text = logs(srv)
        assert re.search(r"TLS connection established to relay\.example\.com\[127\.0\.0\.1\]:%d: TLSv1\.[23] "
                         r"with cipher \S+" % relay.port, text), text
        assert "relay=relay.example.com[127.0.0.1]:%d" % relay.port in text
        assert "secret-key" not in text
        assert ("relay.example.com", "MX") in dns.queries  # host:port looks up MX first


def test_relay_auth_login_only(server_factory, tmp_path):
    """A relay that offers only AUTH LOGIN; [host]:port skips the MX lookup."""
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "p1"},
              exclude_mechanisms=["PLAIN"]) as relay, \
            DNSServer({"relay.example.com": [("A", "127.0.0.1")]}) as dns:
        srv = make_server(server_factory, dns, {
            "relayhost": "[relay.example.com]:%d" % relay.port,
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "hash:%s" % (tmp_path / "srv0" / "sasl_passwd"),
        }, start=False)
        # Keyed by [host]:port as written in relayhost.
        password_map(srv, ["[relay.example.com]:%d u1:p1" % relay.port])
        srv.start()
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        assert relay.auth_ok == [("u1", "LOGIN")]
        assert ("relay.example.com", "MX") not in dns.queries


def test_wrong_relay_password_defers_with_clear_log(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"api-key": "right"}) as relay:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % relay.port,
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "hash:%s" % (tmp_path / "srv0" / "sasl_passwd"),
            "smtp_sasl_security_options": "noanonymous",
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        }, start=False)
        password_map(srv, ["[127.0.0.1]:%d api-key:N0t-The-Passw0rd" % relay.port])
        srv.start()
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        text = logs(srv)
        assert "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535" in text, text
        assert "status=bounced" not in text
        assert relay.auth_failed and not relay.messages
        assert "N0t-The-Passw0rd" not in text  # never the password
        listing = srv.cmd("queue").stdout
        assert "SASL authentication failed" in listing, listing


def test_no_password_over_plain_text_by_default(server_factory, tmp_path):
    """Default smtp_sasl_security_options (noplaintext): a relay without TLS gets no password."""
    with Peer(tmp=tmp_path, users={"api-key": "secret"}) as relay:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % relay.port,
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "hash:%s" % (tmp_path / "srv0" / "sasl_passwd"),
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        }, start=False)
        password_map(srv, ["[127.0.0.1]:%d api-key:secret" % relay.port])
        srv.start()
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert "noplaintext" in logs(srv)
        assert relay.auth_ok == [] and relay.auth_failed == [] and not relay.messages


def test_may_falls_back_to_plain_text_after_a_failed_handshake(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, broken_tls=True) as mx:
        srv = make_server(server_factory, None, {"relayhost": "[127.0.0.1]:%d" % mx.port})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: mx.messages, timeout=20), logs(srv)
        assert "TLS handshake failed with host 127.0.0.1[127.0.0.1]" in logs(srv)
        assert "trying again without TLS" in logs(srv)


def test_encrypt_refuses_peer_without_starttls(server_factory, tmp_path):
    with Peer() as mx:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % mx.port,
            "smtp_tls_security_level": "encrypt",
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        })
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]" in logs(srv)
        assert not mx.messages


def test_mx_preference_first_down_second_up(server_factory, tmp_path):
    with Peer() as mx2:
        zone = {
            "example.net": [("MX", (10, "mx1.example.net")), ("MX", (20, "mx2.example.net"))],
            "mx1.example.net": [("A", "127.0.0.2")],  # nothing listens there
            "mx2.example.net": [("A", "127.0.0.1")],
        }
        with DNSServer(zone) as dns:
            srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx2.port)})
            sendmail(srv, ["bob@example.net", "carol@example.net"])
            assert wait_for(lambda: mx2.messages, timeout=20), logs(srv)
            assert sorted(mx2.messages[0].rcpt_tos) == ["bob@example.net", "carol@example.net"]
            assert wait_for(lambda: logs(srv).count("status=sent") == 2, timeout=10)
            text = logs(srv)
            assert "connect to mx1.example.net[127.0.0.2]:%d" % mx2.port in text, text
            assert "relay=mx2.example.net[127.0.0.1]:%d" % mx2.port in text
            assert ("mx1.example.net", "A") in dns.queries


def test_no_mx_falls_back_to_address(server_factory, tmp_path):
    with Peer() as mx, DNSServer({"example.net": [("A", "127.0.0.1")]}) as dns:
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx.port)})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: mx.messages, timeout=20), logs(srv)
        assert ("example.net", "MX") in dns.queries


def test_4xx_then_success_after_flush(server_factory, tmp_path):
    with Peer() as mx, DNSServer({"example.net": [("MX", (10, "mx.example.net"))],
                                  "mx.example.net": [("A", "127.0.0.1")]}) as dns:
        mx.rcpt_replies["bob@example.net"] = "451 4.3.0 try again later"
        srv = make_server(server_factory, dns, {
            "smtp_tcp_port": str(mx.port),
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        })
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv), timeout=20), logs(srv)
        assert "451 4.3.0 try again later" in logs(srv)
        assert not mx.messages
        assert len(queue_ids(srv)) == 1
        del mx.rcpt_replies["bob@example.net"]
        r = srv.cmd("queue", "flush")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: mx.messages, timeout=20), logs(srv)
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=10)
        assert wait_for(lambda: queue_ids(srv) == [], timeout=10)


def test_5xx_bounces_with_dsn_to_sender(server_factory, tmp_path):
    """One recipient refused in a pipelined transaction: it bounces, the other is sent."""
    with Peer(pipelining=True) as mx, DNSServer({"example.net": [("MX", (10, "mx.example.net"))],
                                  "mx.example.net": [("A", "127.0.0.1")]}) as dns:
        mx.rcpt_replies["nobody@example.net"] = "550 5.1.1 <nobody@example.net>: no such user"
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx.port)})
        sendmail(srv, ["nobody@example.net", "bob@example.net"],
                 body="Subject: original subject\n\nhello\n")
        assert wait_for(lambda: dsn_messages(srv), timeout=20), logs(srv)
        dsn = dsn_messages(srv)[0]
        assert "multipart/report" in dsn and "report-type=delivery-status" in dsn
        assert "nobody@example.net" in dsn
        assert "5.1.1" in dsn
        assert "original subject" in dsn
        assert "bob@example.net" not in dsn.split("Final-Recipient", 1)[-1] or \
            dsn.count("Final-Recipient") == 1
        assert mx.messages and mx.messages[0].rcpt_tos == ["bob@example.net"]


def test_helo_fallback(server_factory, tmp_path):
    with Peer(ehlo_reply="502 5.5.1 EHLO not implemented") as mx:
        srv = make_server(server_factory, None, {"relayhost": "[127.0.0.1]:%d" % mx.port})
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: mx.messages, timeout=20), logs(srv)
        assert mx.ehlo_names == []  # never got past EHLO: it was HELO


def test_size_over_the_peer_limit_bounces_unsent(server_factory, tmp_path):
    with Peer(size_limit=2000) as mx:
        srv = make_server(server_factory, None, {"relayhost": "[127.0.0.1]:%d" % mx.port})
        sendmail(srv, ["big@example.net"], body="Subject: big\n\n" + "x" * 70 + "\n" * 1 +
                 ("y" * 70 + "\n") * 60)
        sendmail(srv, ["small@example.net"], body="Subject: small\n\nhi\n")
        assert wait_for(lambda: dsn_messages(srv), timeout=20), logs(srv)
        dsn = dsn_messages(srv)[0]
        assert "5.3.4" in dsn and "exceeds size limit 2000" in dsn
        assert wait_for(lambda: mx.messages, timeout=20), logs(srv)
        # Only the small one was offered, with its SIZE= (RFC 1870).
        assert [m.rcpt_tos for m in mx.messages] == [["small@example.net"]]
        assert len(mx.mail_froms) == 1 and any(o.startswith("SIZE=") for o in mx.mail_froms[0][1])


def test_sender_dependent_relayhost(server_factory, tmp_path):
    with Peer() as default, Peer() as special:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % default.port,
            "sender_dependent_relayhost_maps": "inline:{app@local.test=[127.0.0.1]:%d}"
                                               % special.port,
        })
        sendmail(srv, ["a@example.net"], sender="app@local.test")
        sendmail(srv, ["b@example.net"], sender="alice@local.test")
        assert wait_for(lambda: special.messages and default.messages, timeout=20), logs(srv)
        assert special.messages[0].rcpt_tos == ["a@example.net"]
        assert default.messages[0].rcpt_tos == ["b@example.net"]


def test_null_mx_bounces_at_once(server_factory, tmp_path):
    with Peer() as mx, DNSServer({"nomail.example.net": [("MX", (0, "."))]}) as dns:
        srv = make_server(server_factory, dns, {"smtp_tcp_port": str(mx.port)})
        sendmail(srv, ["bob@nomail.example.net"], body="Subject: to null mx\n\nhello\n")
        assert wait_for(lambda: dsn_messages(srv), timeout=20), logs(srv)
        dsn = dsn_messages(srv)[0]
        assert "5.1.10" in dsn
        assert "nullMX" in dsn or "does not accept mail" in dsn
        assert "status=bounced" in logs(srv)
        assert mx.connections_after_start == 0


def relay_queued(server_factory, mx, concurrency, n, tag):
    """N messages queued while the server is down, all relayed to MX once it
    starts (so they are picked up together); waits until MX has them all
    and the log says sent for each. The server."""
    srv = make_server(server_factory, None, {
        "relayhost": "[127.0.0.1]:%d" % mx.port,
        "smtp_destination_concurrency_limit": str(concurrency),
        # Long enough that a slow (sanitized) pickup never outlives the cache.
        "smtp_connection_cache_time_limit": "10s",
    }, start=False)
    for i in range(n):
        sendmail(srv, ["user%d@example.net" % i], body="Subject: %s%d\n\nbody %d\n" % (tag, i, i))
    srv.start()
    assert wait_for(lambda: len(mx.messages) == n, timeout=30), logs(srv)
    assert wait_for(lambda: logs(srv).count("status=sent") == n, timeout=20), logs(srv)
    return srv


def test_connection_reuse(server_factory, tmp_path):
    """Many messages to one next hop, few connections, counted at the peer."""
    with Peer() as mx:
        relay_queued(server_factory, mx, 2, 12, "m")
        assert mx.connections_after_start <= 2, mx.connections_after_start


def test_connection_reuse_pipelines_rset(server_factory, tmp_path):
    """A server that offers PIPELINING gets RSET in the same group as MAIL,
    RCPT and DATA on a cached connection: the same few connections, one
    RSET per reused one, every message delivered."""
    with Peer(pipelining=True) as mx:
        srv = relay_queued(server_factory, mx, 2, 12, "m")
        assert mx.connections_after_start <= 2, mx.connections_after_start
        assert mx.rsets >= 12 - mx.connections_after_start, mx.rsets
        assert "status=deferred" not in logs(srv)


def test_cached_connection_refusing_pipelined_rset_is_replaced(server_factory, tmp_path):
    """The cached connection's server answers the pipelined RSET with 421
    and hangs up (as one that timed the connection out would): the message
    goes out on a new connection, nothing is deferred or counted against
    the server."""
    with Peer(pipelining=True, rset_reply="421 4.4.2 idle too long, closing") as mx:
        srv = relay_queued(server_factory, mx, 1, 5, "r")
        assert mx.rsets >= 1, "no connection was reused"
        assert mx.connections_after_start == 1 + mx.rsets, (mx.connections_after_start, mx.rsets)
        assert "status=deferred" not in logs(srv)


def test_wrappermode_relay(server_factory, tmp_path):
    with Peer(tmp=tmp_path, wrapper=True, users={"u": "p"}) as relay:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % relay.port,
            "smtp_tls_wrappermode": "yes",
            "smtp_tls_security_level": "encrypt",
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "hash:%s" % (tmp_path / "srv0" / "sasl_passwd"),
        }, start=False)
        password_map(srv, ["[127.0.0.1]:%d u:p" % relay.port])
        srv.start()
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        assert relay.auth_ok == [("u", "PLAIN")]


def test_verify_level_checks_the_certificate(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, name="relay.example.com") as relay, \
            DNSServer({"relay.example.com": [("A", "127.0.0.1")]}) as dns:
        # Trusted through smtp_tls_CAfile (the self-signed certificate): Verified.
        os.chmod(relay.cert, 0o644)
        srv = make_server(server_factory, dns, {
            "relayhost": "[relay.example.com]:%d" % relay.port,
            "smtp_tls_security_level": "verify",
            "smtp_tls_CAfile": str(relay.cert),
        })
        sendmail(srv, ["bob@example.net"])
        assert wait_for(lambda: relay.messages, timeout=20), logs(srv)
        assert "Verified TLS connection established to relay.example.com[127.0.0.1]" in logs(srv)
        srv.stop()
        # Without the CA the chain does not verify: deferred, nothing sent.
        srv2 = make_server(server_factory, dns, {
            "relayhost": "[relay.example.com]:%d" % relay.port,
            "smtp_tls_security_level": "secure",
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "600s",
        })
        sendmail(srv2, ["carol@example.net"])
        assert wait_for(lambda: "status=deferred" in logs(srv2), timeout=20), logs(srv2)
        assert "Server certificate not verified" in logs(srv2)
        assert len(relay.messages) == 1


def test_transport_maps(server_factory, tmp_path):
    with Peer() as special:
        srv = make_server(server_factory, None, start=False)
        table = srv.tmp / "transport"
        table.write_text("example.org smtp:[127.0.0.1]:%d\n"
                         "gone.example.net error:5.1.2 this domain is gone\n"
                         "void.example.net discard:\n" % special.port)
        os.chmod(table, 0o644)
        srv.settings["transport_maps"] = "texthash:%s" % table
        srv.write_config()
        srv.start()
        sendmail(srv, ["bob@example.org", "x@gone.example.net", "y@void.example.net"])
        assert wait_for(lambda: special.messages, timeout=20), logs(srv)
        assert special.messages[0].rcpt_tos == ["bob@example.org"]
        assert wait_for(lambda: dsn_messages(srv), timeout=20), logs(srv)
        dsn = dsn_messages(srv)[0]
        assert "this domain is gone" in dsn and "5.1.2" in dsn
        assert "y@void.example.net" not in dsn
        assert wait_for(lambda: "to=<y@void.example.net>, relay=none" in logs(srv), timeout=10)
        # Logged under the name of the Postfix agent that does this: discard(8), error(8).
        assert re.search(r"hongyan/discard\[\d+\]: \w+: to=<y@void\.example\.net>", logs(srv)), \
            logs(srv)
        assert re.search(r"hongyan/error\[\d+\]: \w+: to=<x@gone\.example\.net>", logs(srv)), \
            logs(srv)


@pytest.fixture(scope="session")
def smtp_sink():
    """Postfix's smtp-sink (it offers PIPELINING), fetched by scripts/get-smtp-sink.sh."""
    root = pathlib.Path(__file__).resolve().parents[2]
    r = subprocess.run([str(root / "scripts" / "get-smtp-sink.sh"),
                        str(root / "build" / "tools" / "postfix")],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip("smtp-sink not available: " + r.stderr.strip())
    return r.stdout.strip()


def test_pipelining_peer_smtp_sink(server_factory, tmp_path, smtp_sink):
    """Many recipients per transaction, pipelined, many messages over one connection."""
    dump = tmp_path / "sink"
    dump.mkdir()
    os.chmod(dump, 0o777)
    os.chmod(tmp_path, 0o755)
    port = free_port()
    counters = tmp_path / "sink.out"
    out = open(counters, "wb")
    # -c: "sess=N quit=N mesg=N" counters, updated as sessions end.
    sink = subprocess.Popen([smtp_sink, "-c", "-u", "nobody", "-d", str(dump) + "/%M.",
                             "127.0.0.1:%d" % port, "50"],
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc=sink)
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % port,
            "smtp_destination_concurrency_limit": "1",
            "smtp_connection_cache_time_limit": "10s",
        }, start=False)
        for i in range(10):
            sendmail(srv, ["a%d@example.net" % i, "b%d@example.net" % i, "c%d@example.org" % i],
                     body="Subject: sink %d\n\n.dot line\nbody %d\n" % (i, i))
        srv.start()
        # status=sent follows the sink's 250 to the final dot, after its dump is written.
        assert wait_for(lambda: logs(srv).count("status=sent") == 30, timeout=30), logs(srv)
        assert len(list(dump.iterdir())) == 10
        for f in dump.iterdir():
            text = f.read_text(errors="replace")
            n = re.search(r"Subject: sink (\d+)", text).group(1)
            for who in ("a", "b"):
                assert "X-Rcpt-Args: <%s%s@example.net>" % (who, n) in text
            assert "X-Rcpt-Args: <c%s@example.org>" % n in text
            assert "\n.dot line\n" in text.replace("\r\n", "\n")  # dot-stuffing undone
        # One connection carried them all (concurrency 1, cache 10s). The sink's
        # counters ("sess=ENDED quit=N mesg=N") count sessions as they end:
        # stop the server to end ours; the first is wait_port()'s probe.
        srv.stop()

        def last():
            found = re.findall(r"sess=(\d+) quit=\d+ mesg=(\d+)", counters.read_text())
            return tuple(int(x) for x in found[-1]) if found else (0, 0)
        assert wait_for(lambda: last()[0] >= 2, timeout=10), counters.read_text()
        assert last() == (2, 10), counters.read_text()
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        out.close()


def test_dsn_parameters_passed_on(server_factory, tmp_path, smtp_sink):
    """RET/ENVID and NOTIFY/ORCPT given to our smtpd reach a peer that offers DSN."""
    import smtplib
    dump = tmp_path / "sink"
    dump.mkdir()
    os.chmod(dump, 0o777)
    os.chmod(tmp_path, 0o755)
    port = free_port()
    sink = subprocess.Popen([smtp_sink, "-u", "nobody", "-d", str(dump) + "/%M.",
                             "127.0.0.1:%d" % port, "50"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=sink)
        srv = make_server(server_factory, None, {"relayhost": "[127.0.0.1]:%d" % port})
        with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
            c.ehlo("client.example.net")
            c.sendmail("alice@local.test", ["bob@example.net"],
                       b"Subject: dsn\r\n\r\nhello\r\n",
                       mail_options=["RET=HDRS", "ENVID=env+2Bid"],
                       rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                                     "ORCPT=rfc822;bob+2Bx@example.net"])
        # The sink writes its dump as data arrives and answers the final dot after.
        assert wait_for(lambda: "status=sent" in logs(srv), timeout=20), logs(srv)
        text = next(dump.iterdir()).read_text(errors="replace")
        mail = re.search(r"^X-Mail-Args: (.*)$", text, re.M).group(1)
        rcpt = re.search(r"^X-Rcpt-Args: (.*)$", text, re.M).group(1)
        assert "RET=HDRS" in mail and "ENVID=env+2Bid" in mail, mail
        assert "NOTIFY=SUCCESS,FAILURE" in rcpt, rcpt
        assert "ORCPT=rfc822;bob+2Bx@example.net" in rcpt, rcpt
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def test_unreachable_destination_is_suspended(server_factory, tmp_path):
    """Once no server of a next hop answers, the next message is deferred without trying."""
    closed = free_port()
    srv = make_server(server_factory, None, {
        "relayhost": "[127.0.0.1]:%d" % closed,
        "minimal_backoff_time": "300s",
        "maximal_backoff_time": "600s",
    })
    sendmail(srv, ["one@example.net"])
    assert wait_for(lambda: "to=<one@example.net>" in logs(srv), timeout=20), logs(srv)
    assert "connect to 127.0.0.1[127.0.0.1]:%d" % closed in logs(srv)
    sendmail(srv, ["two@example.net"])
    assert wait_for(lambda: "to=<two@example.net>" in logs(srv), timeout=20), logs(srv)
    line = [l for l in logs(srv).splitlines() if "to=<two@example.net>" in l][0]
    assert "status=deferred (delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]" \
        in line, line


def test_reload_changes_the_relayhost(server_factory, tmp_path):
    with Peer() as first, Peer() as second:
        srv = make_server(server_factory, None, {
            "relayhost": "[127.0.0.1]:%d" % first.port,
            "smtp_connection_cache_time_limit": "30s",  # an idle connection to drop on reload
        })
        sendmail(srv, ["a@example.net"])
        assert wait_for(lambda: first.messages, timeout=20), logs(srv)
        srv.settings["relayhost"] = "[127.0.0.1]:%d" % second.port
        srv.reload()
        assert wait_for(lambda: "reload: configuration" in logs(srv), timeout=10)
        sendmail(srv, ["b@example.net"])
        assert wait_for(lambda: second.messages, timeout=20), logs(srv)
        assert second.messages[0].rcpt_tos == ["b@example.net"]
        assert len(first.messages) == 1
