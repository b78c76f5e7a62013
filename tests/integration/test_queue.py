"""The spool, the queue manager, sendmail and `hongyan queue`, against the
real binary: mail queued while the server is down, -t with Bcc, the queue
commands, a DSN for an unknown local user, and restart recovery."""
import json
import email
import email.policy
import os
import re

import pytest

from conftest import free_port, wait_for


def queue_ids(srv, sub="active"):
    d = srv.data / "queue" / sub
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if "." not in p.name)


def read_msg(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def sendmail(srv, args, text):
    r = srv.cmd("sendmail", *args, input=text)
    assert r.returncode == 0, r.stderr
    return r


def test_sendmail_while_stopped_then_start(server_factory):
    srv = server_factory(start=False)
    sendmail(srv, ["-f", "alice@example.com", "bob@example.com"],
             "Subject: queued offline\n\nhello while down\n.\nnot the end without -i? it is\n")
    drop = srv.data / "queue" / "maildrop"
    assert len([p for p in drop.iterdir() if not p.name.startswith(".")]) == 1
    # Only the server and the setgid helper's group may enter the maildrop.
    assert oct(drop.stat().st_mode & 0o7777) == "0o1730"
    out = srv.cmd("queue").stdout
    assert "waiting for pickup" in out and "bob@example.com" in out
    # postqueue -j's form names it too (its file starts with the submitter's uid line).
    entries = [json.loads(line) for line in srv.cmd("queue", "--json").stdout.splitlines()]
    assert [(x["queue_name"], x["sender"]) for x in entries] == [("maildrop", "alice@example.com")]
    assert entries[0]["recipients"][0]["address"] == "bob@example.com"
    srv.start()
    assert wait_for(lambda: srv.messages("example.com", "bob"), timeout=15)
    m = read_msg(srv.messages("example.com", "bob")[0])
    assert m["Subject"] == "queued offline"
    assert m["Return-Path"] == "<alice@example.com>"
    assert m["Delivered-To"] == "bob@example.com"
    assert m["Message-ID"] and m["Date"] and m["From"]
    body = m.get_content()
    assert "hello while down" in body
    # Without -i a lone dot ends the message.
    assert "not the end" not in body
    raw = srv.messages("example.com", "bob")[0].read_bytes()
    assert b"\r\n" in raw  # CRLF kept as queued
    assert wait_for(lambda: queue_ids(srv) == [], timeout=10)
    assert wait_for(lambda: "removed" in srv.log_text(), timeout=5)
    assert re.search(r"[0-9A-V]+: to=<bob@example\.com>, .*relay=local, .*dsn=2\.0\.0, "
                     r"status=sent \(delivered to maildir\)", srv.log_text())


def test_sendmail_t_bcc_removed(server):
    text = ("From: Alice <alice@example.com>\n"
            "To: bob@example.com\n"
            "Cc: \"Carol, C.\" <carol@example.com>\n"
            "Bcc: dave@example.com\n"
            "Subject: extract\n\n"
            "line\n.\nafter dot with -i\n")
    sendmail(server, ["-t", "-i"], text)
    for who in ("bob", "carol", "dave"):
        assert wait_for(lambda: server.messages("example.com", who), timeout=15), who
    for who in ("bob", "carol", "dave"):
        raw = server.messages("example.com", who)[0].read_bytes()
        assert b"Bcc:" not in raw and b"dave@example.com\r\nSubject" not in raw
        m = read_msg(server.messages("example.com", who)[0])
        assert "after dot with -i" in m.get_content()


def test_sendmail_unqualified_and_default_sender(server):
    sendmail(server, ["-F", "Doe, John", "bob"], "Subject: local\n\nx\n")
    assert wait_for(lambda: server.messages("mx.example.com", "bob"), timeout=15)
    m = read_msg(server.messages("mx.example.com", "bob")[0])
    assert m["Delivered-To"] == "bob@mx.example.com"
    assert re.match(r"<\w+@mx\.example\.com>", m["Return-Path"])
    frm = m["From"].addresses[0]
    assert frm.display_name == "Doe, John"
    assert "<" + frm.addr_spec + ">" == m["Return-Path"]
    # -f with angle brackets, and the null sender.
    sendmail(server, ["-f", "<carol@example.com>", "dave@example.com"], "Subject: f\n\nx\n")
    assert wait_for(lambda: server.messages("example.com", "dave"), timeout=15)
    assert read_msg(server.messages("example.com", "dave")[0])["Return-Path"] == "<carol@example.com>"


def test_queue_commands(server_factory):
    # Remote mail to a relay that is not listening stays deferred in the queue.
    closed = free_port()
    srv = server_factory({"relayhost": "[127.0.0.1]:%d" % closed,
                          "minimal_backoff_time": "300s", "maximal_backoff_time": "600s"})
    sendmail(srv, ["-f", "alice@example.com", "someone@remote.test"], "Subject: stays\n\nbody text\n")
    assert wait_for(lambda: len(queue_ids(srv)) == 1, timeout=15)
    qid = queue_ids(srv)[0]
    assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=15)

    out = srv.cmd("queue").stdout
    assert qid in out and "alice@example.com" in out and "someone@remote.test" in out
    assert "1 Request" in out
    # The last error is shown under the recipient.
    assert re.search(r"\(.+\)\n\s+someone@remote\.test", out), out
    # And when it is tried next (the backoff has not run out yet).
    assert re.search(r"\(next try: [^)]+\)", out), out

    show = srv.cmd("queue", "show", qid)
    assert show.returncode == 0
    assert "Subject: stays" in show.stdout and "body text" in show.stdout
    assert "sender: alice@example.com" in show.stdout

    assert srv.cmd("queue", "hold", qid).returncode == 0
    assert queue_ids(srv) == [] and queue_ids(srv, "hold") == [qid]
    out = srv.cmd("queue", "list").stdout
    assert qid + "!" in out
    assert srv.cmd("queue", "release", qid).returncode == 0
    assert queue_ids(srv) == [qid]
    assert qid + "!" not in srv.cmd("queue").stdout

    f = srv.cmd("queue", "flush")
    assert f.returncode == 0, f.stderr
    assert srv.cmd("queue", "show", "NOSUCHID00000").returncode != 0

    assert srv.cmd("queue", "delete", qid).returncode == 0
    assert queue_ids(srv) == []
    assert "Mail queue is empty" in srv.cmd("queue").stdout
    assert srv.cmd("queue", "delete", qid).returncode != 0

    # ALL, and flush reports a stopped server.
    sendmail(srv, ["x@remote.test"], "Subject: a\n\n1\n")
    sendmail(srv, ["y@remote.test"], "Subject: b\n\n2\n")
    assert wait_for(lambda: len(queue_ids(srv)) == 2, timeout=15)
    d = srv.cmd("queue", "delete", "ALL")
    assert d.returncode == 0 and "Deleted: 2 messages" in d.stdout
    srv.stop()
    f = srv.cmd("queue", "flush")
    assert f.returncode != 0 and "not running" in f.stderr


def test_unknown_local_user_bounces(server_factory):
    srv = server_factory({
        "virtual_mailbox_maps":
            "inline:{alice@example.com=example.com/alice/, bob@example.com=example.com/bob/}",
    })
    sendmail(srv, ["-f", "alice@example.com", "nosuch@example.com"],
             "Subject: to nobody\nMessage-ID: <orig-1@example.com>\n\nsecret body\n")
    assert wait_for(lambda: srv.messages("example.com", "alice"), timeout=20)
    dsn = read_msg(srv.messages("example.com", "alice")[0])
    assert dsn["Return-Path"] == "<>"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = list(dsn.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    # message/delivery-status: per-message block then one per recipient.
    blocks = parts[1].get_payload()
    fields = {}
    for b in blocks:
        for k, v in b.items():
            fields[k.lower()] = str(v)
    assert fields["final-recipient"].replace(" ", "") == "rfc822;nosuch@example.com"
    assert fields["action"] == "failed"
    assert fields["status"] == "5.1.1"
    assert "reporting-mta" in fields
    assert "orig-1@example.com" in parts[2].get_content()
    assert "secret body" not in srv.messages("example.com", "alice")[0].read_text()
    assert "status=bounced" in srv.log_text()
    assert wait_for(lambda: queue_ids(srv) == [], timeout=10)


def test_restart_resumes_active_and_quarantines_garbage(server_factory):
    # First run: example.org is not local and the relay is down: deferred.
    srv = server_factory({"relayhost": "[127.0.0.1]:%d" % free_port()})
    sendmail(srv, ["-f", "alice@example.com", "carol@example.org"], "Subject: resume\n\nr\n")
    assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=15)
    assert len(queue_ids(srv)) == 1
    srv.stop()
    # A garbage envelope and a leftover half-received file.
    active = srv.data / "queue" / "active"
    (active / "1GARBAGE000000").write_text("not an envelope\n")
    (srv.data / "queue" / "incoming" / "1HALF00000000.data").write_text("half")
    # Second run: example.org is now delivered locally.
    srv.settings["mydestination"] = "$myhostname, localhost, example.com, example.org"
    srv.write_config()
    srv.start()
    assert wait_for(lambda: srv.messages("example.org", "carol"), timeout=20)
    assert (srv.data / "queue" / "corrupt" / "1GARBAGE000000").exists()
    assert not (srv.data / "queue" / "incoming" / "1HALF00000000.data").exists()
    assert wait_for(lambda: queue_ids(srv) == [], timeout=10)
    assert "1GARBAGE000000" in srv.log_text() and "corrupt" in srv.log_text()


def test_sendmail_without_recipients_fails(server_factory):
    srv = server_factory(start=False)
    r = srv.cmd("sendmail", input="Subject: x\n\nnobody\n")
    assert r.returncode == 64
    assert not any((srv.data / "queue" / "maildrop").glob("[!.]*")) \
        if (srv.data / "queue" / "maildrop").exists() else True


def test_lifetime_expiry_bounces_and_bounce_of_bounce_is_dropped(server_factory):
    srv = server_factory({
        "relayhost": "[127.0.0.1]:%d" % free_port(),
        "maximal_queue_lifetime": "1s",
        "bounce_queue_lifetime": "1s",
        "virtual_mailbox_maps": "inline:{alice@example.com=example.com/alice/}",
    })
    # Remote recipient never reachable: expires and bounces to alice (4.4.7).
    sendmail(srv, ["-f", "alice@example.com", "far@remote.test"], "Subject: expires\n\nx\n")
    assert wait_for(lambda: srv.messages("example.com", "alice"), timeout=30)
    dsn = read_msg(srv.messages("example.com", "alice")[0])
    report = str(list(dsn.iter_parts())[1])
    assert "Status: 4.4.7" in report and "far@remote.test" in report
    # A bounce to a remote sender that cannot be reached is dropped, never bounced.
    sendmail(srv, ["-f", "sender@remote.test", "nosuch@example.com"], "Subject: b\n\ny\n")
    assert wait_for(lambda: "failed for good; dropped" in srv.log_text(), timeout=30)
    assert wait_for(lambda: queue_ids(srv) == [], timeout=15)
    assert len(srv.messages("example.com", "alice")) == 1


def test_sendmail_as_unprivileged_user(server):
    if os.geteuid() != 0:
        pytest.skip("needs root to run sendmail as another user")
    import pwd
    import shutil
    import subprocess
    from conftest import BIN
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    if shutil.which("runuser") is None:
        pytest.skip("runuser not installed")
    r = subprocess.run(["runuser", "-u", "nobody", "--", BIN, "-c", str(server.cfg), "sendmail",
                        "bob@example.com"], input="Subject: unprivileged\n\nhi\n",
                       capture_output=True, text=True, timeout=60)
    if "Permission denied" in r.stderr and "main.cf" in r.stderr:
        pytest.skip("the test directory is not readable by nobody")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: server.messages("example.com", "bob"), timeout=15)
    m = read_msg(server.messages("example.com", "bob")[0])
    assert m["Return-Path"] == "<nobody@mx.example.com>"
    assert "uid=%d " % pwd.getpwnam("nobody").pw_uid in server.log_text()


def smtp_send(srv, sender, rcpts, text, mail_options=(), rcpt_options=()):
    import smtplib
    with smtplib.SMTP("127.0.0.1", srv.smtpd_port, timeout=30) as c:
        c.ehlo("client.example.net")
        return c.sendmail(sender, rcpts, text, mail_options=list(mail_options),
                          rcpt_options=list(rcpt_options))


def test_smtp_sessions_finishing_together_are_all_delivered(server):
    import threading
    errors = []

    def one(i):
        try:
            smtp_send(server, "alice@example.com", ["bob@example.com"],
                      "Subject: parallel %d\r\n\r\nbody %d\r\n" % (i, i))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert wait_for(lambda: len(server.messages("example.com", "bob")) == 30, timeout=30)
    subjects = sorted(read_msg(p)["Subject"] for p in server.messages("example.com", "bob"))
    assert subjects == sorted("parallel %d" % i for i in range(30))
    assert wait_for(lambda: queue_ids(server) == [], timeout=10)


def test_smtp_dsn_parameters(server):
    # A mailbox path that runs through a regular file cannot be used: 5.2.0.
    mail = server.data / "mail"
    dom = mail / "example.com"
    dom.mkdir(exist_ok=True)
    st = mail.stat()
    os.chown(dom, st.st_uid, st.st_gid)
    (dom / "broken").write_text("not a directory")
    smtp_send(server, "alice@example.com", ["broken@example.com"],
              "Subject: full return\r\nMessage-ID: <dsn-1@example.com>\r\n\r\nthe whole body\r\n",
              mail_options=["RET=FULL", "ENVID=abc123"],
              rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;Broken@Example.com"])
    assert wait_for(lambda: server.messages("example.com", "alice"), timeout=20)
    dsn = read_msg(server.messages("example.com", "alice")[0])
    parts = list(dsn.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"]
    report = str(parts[1])
    assert "Original-Envelope-Id: abc123" in report
    assert "Original-Recipient: rfc822;Broken@Example.com" in report
    assert "Status: 5.2.0" in report
    assert "the whole body" in str(parts[2])
    # NOTIFY=NEVER: bounced, logged, and no DSN.
    smtp_send(server, "alice@example.com", ["broken@example.com"], "Subject: quiet\r\n\r\nx\r\n",
              rcpt_options=["NOTIFY=NEVER"])
    assert wait_for(lambda: server.log_text().count("status=bounced") >= 2, timeout=20)
    assert wait_for(lambda: queue_ids(server) == [], timeout=10)
    assert len(server.messages("example.com", "alice")) == 1
