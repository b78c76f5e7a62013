"""Side by side with Postfix 3.7: the same restriction lists in both
main.cf files, the same SMTP dialogues, and every reply compared byte for
byte. Run as root after bench/run.sh has unpacked Postfix (bench/out/
postfix-root): `make compare-postfix`. Exit status 1 when a reply differs.
No DNS: the cases avoid checks that would make Postfix ask the network."""
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests/integration"))
import bench  # noqa: E402
from smtpclient import RawClient  # noqa: E402

W = pathlib.Path(tempfile.mkdtemp(prefix="hongyan-compare-"))
W.chmod(0o755)  # Postfix and hongyan drop to their own users
(W / "access").write_text("spam@bad.example REJECT no thanks\nlater@bad.example DEFER\n"
                          "code@bad.example 521 5.7.0 go away\nsoft@bad.example 450 4.7.2 busy\n"
                          "bad.example REJECT\nstrict@good.test strict_class\nwarn@good.test WARN odd\n"
                          "typo@good.test OKAY\n")
common = {
    "smtpd_restriction_classes": "strict_class",
    "strict_class": "reject_non_fqdn_helo_hostname, reject",
    "smtpd_helo_restrictions": "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
    "smtpd_sender_restrictions": "reject_non_fqdn_sender, check_sender_access texthash:%s" % (W / "access"),
    "smtpd_relay_restrictions": "permit_sasl_authenticated, defer_unauth_destination",
    "smtpd_recipient_restrictions": "reject_non_fqdn_recipient, warn_if_reject, reject_unauth_pipelining",
    "smtpd_data_restrictions": "reject_unauth_pipelining",
    "mynetworks": "192.0.2.0/24",
}
CASES = [
    ("client.example", "a@good.test", "u@local.test"),
    ("client.example", "a@good.test", "x@other.example"),
    ("nodot", "a@good.test", "u@local.test"),
    ("bad_name.example", "a@good.test", "u@local.test"),
    ("client.example", "spam@bad.example", "u@local.test"),
    ("client.example", "later@bad.example", "u@local.test"),
    ("client.example", "code@bad.example", "u@local.test"),
    ("client.example", "soft@bad.example", "u@local.test"),
    ("client.example", "x@sub.bad.example", "u@local.test"),
    ("client.example", "strict@good.test", "u@local.test"),
    ("client.example", "typo@good.test", "u@local.test"),
    ("client.example", "joe@nodot", "u@local.test"),
    ("client.example", "a@good.test", "u@nodot"),
]

def dialog(port, helo, s, r):
    c = RawClient(port)
    c.reply()
    out = []
    try:
        out.append(c.cmd("EHLO " + helo)[0])
        out.append(c.cmd("MAIL FROM:<%s>" % s)[:2])
        out.append(c.cmd("RCPT TO:<%s>" % r)[:2])
        out.append(c.cmd("RCPT TO:<user@local.test>")[:2])
        c.send(b"DATA\r\nSubject: x\r\n\r\n.\r\n")
        out.append(c.reply()[:2])
    except (EOFError, OSError) as e:
        out.append("EOF")
    c.close()
    return out

sink = bench.Sink("cmp").start()
pf = bench.Postfix(W / "pf", sink.port)
orig_setup = pf.setup
def setup():
    orig_setup()
    with open(pf.conf / "main.cf", "a") as f:
        for k, v in common.items():
            f.write("%s = %s\n" % (k, v))
pf.setup = setup
hy = bench.Hongyan(W / "hy", sink.port, extra=dict(common))
differ = 0
try:
    pf.start()
    hy.start()
    for case in CASES:
        a = dialog(pf.port, *case)
        b = dialog(hy.port, *case)
        print("same" if a == b else "DIFFERENT", case)
        print("   postfix:", a)
        if a != b:
            differ += 1
            print("   hongyan:", b)
finally:
    pf.stop()
    hy.stop()
    sink.stop()
    shutil.rmtree(W, ignore_errors=True)
print("%d of %d dialogues differ" % (differ, len(CASES)))
sys.exit(1 if differ else 0)
