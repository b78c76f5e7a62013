"""Side by side with Postfix 3.7: the same restriction lists in both
main.cf files, the same SMTP dialogues, and every reply compared byte for
byte. Run as root after bench/run.sh has unpacked Postfix (bench/out/
postfix-root): `make compare-postfix`. Exit status 1 when a reply differs.
No DNS: the cases avoid checks that would make Postfix ask the network.

A dialogue is EHLO, MAIL, RCPT of the case's recipient, RCPT of a valid
one, then DATA pipelined with its message (which reject_unauth_pipelining
refuses); the greeting is compared too. A case's "pipeline" flag sends
EHLO..RCPT at once instead, for the delay_reject and early-talker rules.
"""
import pathlib
import shutil
import socket
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests/integration"))
import bench  # noqa: E402
from smtpclient import RawClient  # noqa: E402

W = pathlib.Path(tempfile.mkdtemp(prefix="hongyan-compare-"))
W.chmod(0o755)  # Postfix and hongyan drop to their own users
ACCESS = W / "access"
ACCESS.write_text("spam@bad.example REJECT no thanks\n"
                  "later@bad.example DEFER\n"
                  "code@bad.example 521 5.7.0 go away\n"
                  "soft@bad.example 450 4.7.2 busy\n"
                  "bad.example REJECT\n"
                  "strict@good.test strict_class\n"
                  "warn@good.test WARN odd\n"
                  "typo@good.test OKAY\n"
                  "maybe@good.test DEFER_IF_PERMIT not yet\n"
                  "dir@good.test DEFER_IF_REJECT try again\n"
                  "<> REJECT no bounces here\n"
                  "relay@other.example OK\n"
                  "blocked@local.test 550 5.1.1 gone away\n"
                  "addr@local.test 550 5.1.8 odd sender code\n")
CLIENTS = W / "clients"
CLIENTS.write_text("127.0.0.1 DUNNO\n")

# A PostgreSQL table that cannot answer: nothing listens on its port. Used
# only when the private Postfix has the Debian postfix-pgsql module
# (bench/run.sh unpacks it too): both must answer 451 4.3.0 "Temporary
# lookup failure", never a relay refusal or a pass.
DEAD_PG = W / "dead-pgsql.cf"
DEAD_PG.write_text("hosts = 127.0.0.1:%d\nuser = mail\npassword = x\ndbname = mail\n"
                   "query = SELECT 'x' WHERE '%%s' <> ''\n" % bench.free_port())
DEAD_PG.chmod(0o644)
PGSQL_CONFIGS = [
    ({
        "relay_domains": "pgsql:%s" % DEAD_PG,
        "smtpd_relay_restrictions": "reject_unauth_destination",
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "x@other.example"),
        ("client.example", "a@good.test", "user@local.test"),
    ]),
    ({
        "virtual_mailbox_domains": "local.test, pgsql:%s" % DEAD_PG,
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "x@other.example"),
        ("client.example", "a@good.test", "user@local.test"),
    ]),
    ({
        # (reject_sender_login_mismatch is not compared: without SASL Postfix ignores it.)
        "smtpd_recipient_restrictions": "reject_unlisted_recipient",
        "virtual_mailbox_maps": "pgsql:%s" % DEAD_PG,
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "user@local.test"),
        ("client.example", "", "user@local.test"),
    ]),
    ({
        "smtpd_sender_restrictions": "check_sender_access pgsql:%s" % DEAD_PG,
        "smtpd_recipient_restrictions": "check_recipient_access pgsql:%s" % DEAD_PG,
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "user@local.test"),
    ]),
]

CONFIGS = [
    ({
        "smtpd_restriction_classes": "strict_class",
        "strict_class": "reject_non_fqdn_helo_hostname, reject",
        "smtpd_helo_restrictions": "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
        "smtpd_sender_restrictions": "reject_non_fqdn_sender, check_sender_access texthash:%s"
                                     % ACCESS,
        "smtpd_relay_restrictions": "permit_sasl_authenticated, defer_unauth_destination",
        "smtpd_recipient_restrictions": "reject_non_fqdn_recipient, warn_if_reject, "
                                        "reject_unauth_pipelining",
        "smtpd_data_restrictions": "reject_unauth_pipelining",
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "u@local.test"),
        ("client.example", "a@good.test", "x@other.example"),
        ("nodot", "a@good.test", "u@local.test"),
        ("bad_name.example", "a@good.test", "u@local.test"),
        ("bad-.example", "a@good.test", "u@local.test"),
        ("1.2.3.4", "a@good.test", "u@local.test"),
        ("[127.0.0.1]", "a@good.test", "u@local.test"),
        ("client.example", "spam@bad.example", "u@local.test"),
        ("client.example", "later@bad.example", "u@local.test"),
        ("client.example", "code@bad.example", "u@local.test"),
        ("client.example", "soft@bad.example", "u@local.test"),
        ("client.example", "x@sub.bad.example", "u@local.test"),
        ("client.example", "strict@good.test", "u@local.test"),
        ("client.example", "typo@good.test", "u@local.test"),
        ("client.example", "joe@nodot", "u@local.test"),
        ("client.example", "a@good.test", "u@nodot"),
        ("client.example", "maybe@good.test", "user@local.test"),
        ("client.example", "", "user@local.test"),
    ]),
    ({
        "smtpd_client_restrictions": "check_client_access texthash:%s" % CLIENTS,
        "smtpd_sender_restrictions": "check_sender_access texthash:%s, reject_unauth_pipelining"
                                     % ACCESS,
        "smtpd_relay_restrictions": "",
        "smtpd_recipient_restrictions": "check_recipient_access texthash:%s, permit_mynetworks, "
                                        "reject_unauth_destination, reject" % ACCESS,
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "relay@other.example"),
        ("client.example", "a@good.test", "x@other.example"),
        ("client.example", "a@good.test", "blocked@local.test"),
        ("client.example", "a@good.test", "addr@local.test"),
        ("client.example", "dir@good.test", "user@local.test"),
        ("client.example", "a@good.test", "user@local.test"),
    ]),
    ({
        "smtpd_delay_reject": "no",
        "smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname",
        "smtpd_sender_restrictions": "check_sender_access texthash:%s" % ACCESS,
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "spam@bad.example", "user@local.test"),
        # A refused HELO: both then take MAIL without one.
        ("nodot", "a@good.test", "user@local.test"),
        # No HELO at all: smtpd_helo_required = no takes MAIL.
        (None, "a@good.test", "user@local.test"),
        ("client.example", "a@good.test", "user@local.test"),
    ]),
    ({
        "smtpd_helo_required": "yes",
        "mynetworks": "192.0.2.0/24",
    }, [
        (None, "a@good.test", "user@local.test"),
        ("client.example", "a@good.test", "user@local.test"),
    ]),
    ({
        "smtpd_delay_reject": "no",
        "smtpd_client_restrictions": "reject",
        "mynetworks": "192.0.2.0/24",
    }, [
        ("client.example", "a@good.test", "user@local.test"),
    ]),
]


def dialog(port, helo, sender, rcpt):
    c = RawClient(port)
    out = []
    try:
        out.append(c.reply()[:2])
        if helo is not None:  # None: the client skips HELO/EHLO
            out.append(c.cmd("EHLO " + helo)[0])
        out.append(c.cmd("MAIL FROM:<%s>" % sender)[:2])
        out.append(c.cmd("RCPT TO:<%s>" % rcpt)[:2])
        out.append(c.cmd("RCPT TO:<user@local.test>")[:2])
        c.send(b"DATA\r\nSubject: x\r\n\r\n.\r\n")
        out.append(c.reply()[:2])
    except (EOFError, OSError):
        out.append("EOF")
    c.close()
    return out


def any_banner(port, timeout=20.0, proc=None):
    """As bench.wait_banner, but a refusal (smtpd_delay_reject = no) counts as up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(512)[:1] in (b"2", b"4", b"5"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def same_host(replies, host):
    """The greeting names each server's own host and name: compare the rest."""
    return [(r[0], r[1].replace(host, "HOST").replace("ESMTP Postfix", "ESMTP NAME")
             .replace("ESMTP hongyan", "ESMTP NAME")) if isinstance(r, tuple) else r
            for r in replies]


def main():
    bench.wait_banner = any_banner
    differ = total = 0
    configs = list(CONFIGS)
    if (bench.PFROOT / "usr/lib/postfix/postfix-pgsql.so").exists():
        configs += PGSQL_CONFIGS
    else:
        print("(no postfix-pgsql in %s: the pgsql: cases are skipped)" % bench.PFROOT)
    sink = bench.Sink("cmp").start()
    try:
        for n, (settings, cases) in enumerate(configs):
            pf = bench.Postfix(W / ("pf%d" % n), sink.port)
            setup = pf.setup

            def setup_with_lists(pf=pf, setup=setup, settings=settings):
                setup()
                with open(pf.conf / "main.cf", "a") as f:
                    for k, v in settings.items():
                        f.write("%s = %s\n" % (k, v))
            pf.setup = setup_with_lists
            hy = bench.Hongyan(W / ("hy%d" % n), sink.port, extra=dict(settings))
            try:
                pf.start()
                hy.start()
                print("== %s" % ", ".join("%s = %s" % kv for kv in settings.items()))
                for case in cases:
                    total += 1
                    a = same_host(dialog(pf.port, *case), "pf.bench.test")
                    b = same_host(dialog(hy.port, *case), "hy.bench.test")
                    print("same" if a == b else "DIFFERENT", case)
                    print("   postfix:", a)
                    if a != b:
                        differ += 1
                        print("   hongyan:", b)
            finally:
                pf.stop()
                hy.stop()
    finally:
        sink.stop()
        shutil.rmtree(W, ignore_errors=True)
    print("%d of %d dialogues differ" % (differ, total))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
