"""How a queued message's data reaches its readers (docs/queue.md, Layout):
one message delivered in every way at once — into a Maildir, relayed to an
aiosmtpd peer, bounced, deferred — arrives byte for byte the same in each
place, with SIZE= and `hongyan queue` sizes equal to its length, and the
delivery process keeps no descriptor of it open once its agents answered."""
import os
import re

from conftest import wait_for
from smtppeer import Peer

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "600s",
}


def open_data_files(pids):
    """The queue data files (QUEUEID.data) the processes have open."""
    found = []
    for pid in pids:
        d = "/proc/%d/fd" % pid
        for fd in os.listdir(d):
            try:
                link = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if "/queue/" in link and ".data" in link:  # deleted ones too: "... (deleted)"
                found.append(link)
    return found


def test_one_message_every_reader(server_factory):
    # Long enough for many reads of the client's and the Maildir copy's
    # chunks, with lines the client must dot-stuff.
    body = "".join("line %05d .dots. %s\n" % (i, "x" * 60) for i in range(4000))
    text = "Subject: every reader\n\n.leading dot\n" + body + "..two dots\nlast line\n"
    with Peer(pipelining=True) as relay:
        relay.rcpt_replies["dave@example.net"] = "550 5.1.1 <dave@example.net>: no such user"
        relay.rcpt_replies["erin@example.net"] = "451 4.3.0 try again later"
        settings = dict(LOCAL, relayhost="[127.0.0.1]:%d" % relay.port)
        srv = server_factory(extra=settings)
        r = srv.cmd("sendmail", "-f", "alice@local.test", "bob@local.test", "carol@example.net",
                    "dave@example.net", "erin@example.net", input=text)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: srv.messages("local.test", "bob"), timeout=30), srv.log_text()
        assert wait_for(lambda: relay.messages, timeout=30), srv.log_text()
        assert wait_for(lambda: srv.messages("local.test", "alice"), timeout=30), srv.log_text()
        assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=30)

        # The Maildir copy is the two headers delivery adds, then the queued data exactly.
        stored = srv.messages("local.test", "bob")[0].read_bytes()
        prefix = b"Return-Path: <alice@local.test>\r\nDelivered-To: bob@local.test\r\n"
        assert stored.startswith(prefix)
        data = stored[len(prefix):]
        assert b"Subject: every reader\r\n" in data and data.endswith(b"last line\r\n")
        assert b"\r\n.leading dot\r\n" in data and b"\r\n..two dots\r\n" in data
        assert b"\n" not in data.replace(b"\r\n", b"")  # every line ends in CRLF

        # The peer got the same bytes (dot-stuffing undone by aiosmtpd), with SIZE= their length.
        sent = relay.messages[0]
        assert sent.rcpt_tos == ["carol@example.net"]
        assert sent.data == data
        assert "SIZE=%d" % len(data) in sent.mail_options

        # The bounce quotes the original's headers.
        dsn = srv.messages("local.test", "alice")[0].read_text(errors="replace")
        assert "dave@example.net" in dsn and "Subject: every reader" in dsn

        # Still queued for erin: the listing and `queue show` read the same data.
        qid = re.findall(r"^([0-9A-Z]{15})\s+(\d+)", srv.cmd("queue").stdout, re.M)
        assert len(qid) == 1 and int(qid[0][1]) == len(data), qid
        show = srv.cmd("queue", "show", qid[0][0])
        assert show.returncode == 0, show.stderr
        contents = show.stdout.split("*** MESSAGE CONTENTS %s ***\n" % qid[0][0], 1)[1]
        assert contents.split("*** END OF MESSAGE")[0].encode() == data.replace(b"\r\n", b"\n")

        # Every delivery of the round has answered: none of them holds the data open.
        delivery = srv.child_pids("delivery")
        assert delivery
        assert wait_for(lambda: open_data_files(delivery) == [], timeout=10), \
            open_data_files(delivery)
