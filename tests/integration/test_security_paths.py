"""Local attacks on the paths root follows (issue 11): the real binary runs as
root; the attacker is `nobody` (any local user) or `hongyan` (mail_owner, as a
compromised worker would be), acting through setpriv. Each test checks that
root refused, or did not act on what the attacker planted."""
import os
import pathlib
import pwd
import stat
import subprocess

import pytest

from conftest import run, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (privilege boundaries)")


def reachable(path):
    """Lets other users traverse root's directories above path, as Server()
    does for its own (conftest.py keeps them out of /tmp/pytest-of-root,
    which another pytest run starting on this machine closes again)."""
    for parent in pathlib.Path(path).parents:
        if str(parent) in ("/", "/tmp"):
            break
        st = os.stat(parent)
        if st.st_uid == 0 and st.st_mode & 0o711 != 0o711:
            os.chmod(parent, st.st_mode | 0o711)


def as_user(user, argv, check=True, input=None):
    """Runs argv as user (uid, gid, no supplementary groups), like a local attacker."""
    for arg in argv:
        if arg.startswith("/tmp/"):
            reachable(arg)
    pw = pwd.getpwnam(user)
    r = subprocess.run(["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                        "--clear-groups", "--"] + argv, capture_output=True, text=True,
                       input=input, timeout=30)
    if check:
        assert r.returncode == 0, (argv, r.stderr)
    return r


def owner(path):
    return os.lstat(path).st_uid


def victim_dir(tmp_path):
    """A root-owned directory that nobody but root may own or change."""
    v = tmp_path / "victim"
    v.mkdir(mode=0o755, exist_ok=True)
    (v / "precious").write_text("root's file\n")
    os.chmod(v / "precious", 0o600)
    return v


def started_once(server_factory):
    """A server that ran once as root, so data_directory belongs to mail_owner."""
    srv = server_factory()
    srv.stop()
    assert owner(srv.data) == pwd.getpwnam("hongyan").pw_uid
    return srv


def start_fails(srv):
    srv.start(wait=False)
    assert wait_for(lambda: srv.proc.poll() is not None, timeout=15), srv.log_text()
    rc = srv.stop()
    assert rc != 0
    return srv.log_text()


def test_symlinked_tls_dir_is_refused_not_chowned(server_factory, tmp_path):
    # A compromised worker swaps $data_directory/tls for a link to a root
    # directory; the next start as root must not give that directory away.
    srv = started_once(server_factory)
    victim = victim_dir(tmp_path)
    tls = srv.data / "tls"
    # The directory is the keeper's; the worker can still move it aside in
    # its data_directory and put a link (or a directory of its own) there.
    as_user("hongyan", ["mv", str(tls), str(srv.data / "tls.old")])
    as_user("hongyan", ["ln", "-s", str(victim), str(tls)])
    log = start_fails(srv)
    assert "%s is a symbolic link" % tls in log, log
    os.unlink(tls)
    as_user("hongyan", ["mkdir", str(tls)])
    log = start_fails(srv)
    assert "%s is owned by uid %d" % (tls, pwd.getpwnam("hongyan").pw_uid) in log, log
    assert owner(victim) == 0 and owner(victim / "precious") == 0
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o755


def test_symlinked_mailbox_base_is_refused(server_factory, tmp_path):
    srv = started_once(server_factory)
    victim = victim_dir(tmp_path)
    mail = srv.data / "mail"
    as_user("hongyan", ["rm", "-rf", str(mail)])
    as_user("hongyan", ["ln", "-s", str(victim), str(mail)])
    log = start_fails(srv)
    assert "virtual_mailbox_base: %s is a symbolic link" % mail in log, log
    assert owner(victim) == 0


def test_directory_owned_by_another_user_is_refused(server_factory):
    srv = started_once(server_factory)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(srv.data / "queue", nobody, -1)
    log = start_fails(srv)
    assert "%s is owned by uid %d" % (srv.data / "queue", nobody) in log, log
    assert owner(srv.data / "queue") == nobody


def test_maildrop_contents_are_never_chowned(server_factory, tmp_path):
    # maildrop/ is the local submission boundary (docs/submission.md): a
    # local user cannot write there at all, only through hongyan-postdrop.
    # Whatever does get there keeps its owner: root walking it would chown
    # names another user controls. A hard link shows it whatever pickup then
    # does with the name: the inode it shares with a file outside the queue
    # must keep its owner.
    srv = started_once(server_factory)
    nobody = pwd.getpwnam("nobody")
    home = tmp_path / "nobody-home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    outside = home / "outside"
    as_user("nobody", ["touch", str(outside)])
    drop = srv.data / "queue" / "maildrop"
    r = subprocess.run(["runuser", "-u", "nobody", "--", "ln", str(outside),
                        str(drop / "planted-link")], capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    # Root (or anyone who got in) plants a link and a directory anyway.
    os.link(outside, drop / "planted-link")
    (drop / "planted-dir").mkdir()
    os.chown(drop / "planted-dir", nobody.pw_uid, nobody.pw_gid)
    srv.start()
    srv.stop()
    assert owner(outside) == nobody.pw_uid
    if (drop / "planted-dir").exists():
        assert owner(drop / "planted-dir") == nobody.pw_uid
    # The queue's own directories were still handed over.
    for sub in ("incoming", "active", "maildrop"):
        assert owner(srv.data / "queue" / sub) == pwd.getpwnam("hongyan").pw_uid


QUEUE_DIRS = ("incoming", "incoming.delivery", "active", "hold", "corrupt", "maildrop", "public")


def test_root_created_queue_dirs_are_handed_over(server_factory):
    # `hongyan queue` run as root before the first start lays out the queue
    # with the server's owners, and the start hands each directory over
    # again (without a walk).
    srv = server_factory(start=False)
    r = srv.cmd("queue", "list")
    assert r.returncode == 0, r.stderr
    hongyan = pwd.getpwnam("hongyan").pw_uid
    for sub in QUEUE_DIRS + ("public/flush",):
        assert owner(srv.data / "queue" / sub) == hongyan, sub
    srv.start()
    for sub in QUEUE_DIRS:
        assert owner(srv.data / "queue" / sub) == hongyan, sub
    # root's flush FIFO was replaced by the worker's own, which it can read.
    flush = srv.data / "queue" / "public" / "flush"
    assert stat.S_ISFIFO(os.lstat(flush).st_mode) and owner(flush) == hongyan
    assert "cannot open" not in srv.log_text()


def test_root_commands_never_leave_a_directory_the_worker_cannot_use(server_factory):
    # A root command that finds a queue directory missing makes it; made as
    # root (0700) it would give the running worker "Permission denied" on
    # its own spool until the next start. Here the empty hold/ and corrupt/
    # are removed under a running server (a queue directory can also be
    # missing when a root command races a first start).
    srv = server_factory()
    q = srv.data / "queue"
    hongyan = pwd.getpwnam("hongyan")
    for cmd, name in ((("queue", "list"), "hold"), (("queue", "--json"), "corrupt"),
                      (("sendmail", "-f", "alice@example.com", "u@example.com"), "hold")):
        os.rmdir(q / name)
        r = srv.cmd(*cmd, input="Subject: x\n\nx\n" if cmd[0] == "sendmail" else None)
        assert r.returncode == 0, (cmd, r.stderr)
        st = os.lstat(q / name)
        assert stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) == \
            (hongyan.pw_uid, hongyan.pw_gid) and stat.S_IMODE(st.st_mode) == 0o700, (cmd, name)
    # The worker goes on with what root left: the message sendmail queued
    # is picked up and delivered.
    assert wait_for(lambda: srv.messages("example.com", "u"), timeout=20), srv.log_text()
    for sub in QUEUE_DIRS:
        assert owner(q / sub) == hongyan.pw_uid, sub
    assert "Permission denied" not in srv.log_text(), srv.log_text()


def test_user_cli_does_not_copy_a_symlinked_target(server_factory, tmp_path):
    # The users file sits in data_directory, which mail_owner owns: a
    # compromised worker links it to a root secret and waits for root's
    # `hongyan user add`; root must not copy the secret into a file the
    # worker can read.
    srv = started_once(server_factory)
    secret = tmp_path / "secret"
    secret.write_text("root-only-secret\n")
    os.chmod(secret, 0o600)
    users = srv.data / "users"
    as_user("hongyan", ["ln", "-sf", str(secret), str(users)])
    r = srv.cmd("user", "add", "bob@example.com", input="pw-for-bob\n")
    assert r.returncode != 0
    assert "users" in r.stderr, r.stderr
    assert secret.read_text() == "root-only-secret\n"
    assert os.path.islink(users)


def test_user_cli_temp_file_is_not_followed(server_factory, tmp_path):
    # The old temp name was FILE.tmp.PID: the worker could plant links for
    # the next pids and have root write through them.
    srv = started_once(server_factory)
    victim = tmp_path / "victim-file"
    victim.write_text("untouched\n")
    os.chmod(victim, 0o600)
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    plant = ("import os,sys\nfor p in range(%d, %d):\n"
             "    try:\n"
             "        os.symlink(sys.argv[1], sys.argv[2] + '.tmp.%%d' %% (p %% %d))\n"
             "    except OSError as e:\n"
             "        print(e, file=sys.stderr)\n") % (last + 1, last + 3000, pid_max)
    r = as_user("hongyan", ["/usr/bin/python3", "-c", plant, str(victim), str(srv.data / "users")])
    assert len(r.stderr.splitlines()) < 10, r.stderr  # a few may fail; most are planted
    r = srv.cmd("user", "add", "carol@example.com", input="pw-for-carol\n")
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "untouched\n"
    st = os.lstat(srv.data / "users")
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
    assert st.st_gid == pwd.getpwnam("hongyan-keys").pw_gid
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert "carol@example.com:" in (srv.data / "users").read_text()


def test_dkim_keygen_refuses_a_symlinked_domain_dir(server_factory, tmp_path):
    srv = started_once(server_factory)
    victim = victim_dir(tmp_path)
    keydir = srv.data / "dkim"
    # The key directory is the keeper's: a compromised keeper (or the
    # worker's own directory planted in its place) is what could plant it.
    if not keydir.exists():
        as_user("hongyan-keys", ["mkdir", str(keydir)])
    as_user("hongyan-keys", ["ln", "-s", str(victim), str(keydir / "example.com")])
    r = srv.cmd("dkim", "keygen", "example.com", "--algorithm", "ed25519")
    assert r.returncode != 0
    assert "%s is a symbolic link" % (keydir / "example.com") in r.stderr, r.stderr
    assert owner(victim) == 0
    assert sorted(os.listdir(victim)) == ["precious"]


def test_dkim_keygen_as_root_gives_keys_to_the_keeper(server_factory):
    srv = started_once(server_factory)
    r = srv.cmd("dkim", "keygen", "example.net", "--algorithm", "ed25519")
    assert r.returncode == 0, r.stderr
    key = srv.data / "dkim" / "example.net" / "mail.pem"
    st = os.stat(key)
    assert st.st_uid == pwd.getpwnam("hongyan-keys").pw_uid
    assert st.st_gid == pwd.getpwnam("hongyan-keys").pw_gid
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert not [n for n in os.listdir(key.parent) if ".tmp." in n]


def test_map_build_keeps_the_source_private(tmp_path):
    # sasl_passwd is root 0600 in every relay guide; its compiled table must
    # not be readable by other local users (postmap copies owner and mode).
    os.chmod(tmp_path, 0o755)
    src = tmp_path / "sasl_passwd"
    src.write_text("[relay.example.com]:587 user:relay-secret\n")
    os.chmod(src, 0o600)
    r = run(["map", "build", "hash:%s" % src])
    assert r.returncode == 0, r.stderr
    db = tmp_path / "sasl_passwd.lmdb"
    st = os.stat(db)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    r = as_user("nobody", ["cat", str(db)], check=False)
    assert r.returncode != 0 and "relay-secret" not in r.stdout
    assert run(["map", "query", "hash:%s" % src, "[relay.example.com]:587"]).stdout.strip() \
        == "user:relay-secret"
    assert not [n for n in os.listdir(tmp_path) if ".tmp." in n]


def test_map_build_takes_the_source_owner_and_group(tmp_path):
    os.chmod(tmp_path, 0o755)
    nobody = pwd.getpwnam("nobody")
    src = tmp_path / "access"
    src.write_text("example.com OK\n")
    os.chown(src, nobody.pw_uid, nobody.pw_gid)
    os.chmod(src, 0o640)
    r = run(["map", "build", str(src)])
    assert r.returncode == 0, r.stderr
    st = os.stat(tmp_path / "access.lmdb")
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o640
