"""The README's first command on a machine that has nothing of ours: no
`hongyan` user, no configuration, no data directory. `make run` in a copy of
the tree, inside private mount and network namespaces whose /etc is a copy
without the account, must build, create the account, serve on
127.0.0.1:2525 and deliver a message into Maildir. The tour's relay part
follows: a second server from `tour.cf`, run as root (so it drops to the
new account), and `sendmail` into it through the fresh build's helper,
relayed to an aiosmtpd stand-in. (`make test`, the other command, is what
runs this very file.)"""
import os
import shutil
import subprocess
import textwrap

import pytest

from conftest import ROOT

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and useradd need root"),
    pytest.mark.skipif(bool(os.environ.get("HONGYAN_SANITIZED")),
                       reason="builds its own normal binary; once per make test is enough"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare missing"),
]

SCRIPT = textwrap.dedent("""\
    set -eu
    ip link set lo up
    # This machine's /etc, less the account, so that make run must create it.
    cp -a /etc "$WORK/etc"
    for f in passwd group shadow gshadow; do
        [ -f "$WORK/etc/$f" ] && sed -i '/^hongyan:/d; /^hongyan-[a-z]*:/d' "$WORK/etc/$f"
    done
    mount --bind "$WORK/etc" /etc
    ! id hongyan >/dev/null 2>&1
    cd "$WORK/tree"
    setsid make run >"$WORK/run.log" 2>&1 &
    pid=$!
    ok=0
    for i in $(seq 1 600); do
        if /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 2525), 1)' 2>/dev/null; then
            ok=1; break
        fi
        kill -0 $pid 2>/dev/null || break
        sleep 0.5
    done
    if [ $ok = 1 ]; then
        /usr/bin/python3 - <<'PY'
    import smtplib, time, glob
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as s:
        s.sendmail("app@localhost", ["you@localhost"], "Subject: tour\\r\\n\\r\\nhello\\r\\n")
    for _ in range(200):
        if glob.glob("hongyan-data/mail/localhost/you/new/*"):
            print("DELIVERED")
            break
        time.sleep(0.1)
    PY
    fi
    id hongyan >/dev/null 2>&1 && echo "ACCOUNT CREATED"
    # The tour's relay part, its lines as the README has them: a server
    # run as root that drops privileges, and sendmail into it through the
    # helper of this fresh build (not setgid: nothing installed it).
    /usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:2626 >"$WORK/aiosmtpd.log" 2>&1 &
    aio=$!
    cat > tour.cf <<EOF
    data_directory = $PWD/tour-data
    smtpd_listen = 127.0.0.1:2526
    submission_listen = 127.0.0.1:2588
    relayhost = [127.0.0.1]:2626
    EOF
    setsid ./build/hongyan -c tour.cf serve >"$WORK/tour.log" 2>&1 &
    tour=$!
    # Both listening before the message goes: a relay attempt that finds
    # no stand-in yet is deferred for minutes (a person typing the tour
    # starts the stand-in long before).
    for port in 2626 2526; do
        for i in $(seq 1 150); do
            /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
            sleep 0.2
        done
    done
    echo "relayed" | ./build/hongyan -c tour.cf sendmail someone@example.net && echo "SENDMAIL QUEUED"
    for i in $(seq 1 100); do
        grep -q "to=<someone@example.net>.*status=sent" "$WORK/tour.log" && { echo "RELAYED"; break; }
        sleep 0.2
    done
    kill -TERM -$tour $aio 2>/dev/null || true
    wait $tour $aio || true
    kill -TERM -$pid 2>/dev/null || true
    wait $pid || true
    """)


def test_make_run_works_on_a_machine_without_our_account(tmp_path):
    tree = tmp_path / "tree"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    # The worker runs as the new account and must reach ./hongyan-data.
    for p in [tree] + list(tree.parents):
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o711)
    env = dict(os.environ, WORK=str(tmp_path))
    r = subprocess.run(["unshare", "--mount", "--net", "--fork", "sh", "-c", SCRIPT],
                       env=env, capture_output=True, text=True, timeout=900)
    log = (tmp_path / "run.log").read_text(errors="replace") if (tmp_path / "run.log").exists() else ""
    assert "ACCOUNT CREATED" in r.stdout, r.stdout + r.stderr + log[-3000:]
    assert "DELIVERED" in r.stdout, r.stdout + r.stderr + log[-3000:]
    tour = (tmp_path / "tour.log").read_text(errors="replace") if (tmp_path / "tour.log").exists() else ""
    assert "SENDMAIL QUEUED" in r.stdout, r.stdout + r.stderr + tour[-3000:]
    assert "RELAYED" in r.stdout, r.stdout + r.stderr + tour[-3000:]
