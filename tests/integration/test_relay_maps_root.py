"""The relay password maps opened by root (issue 12 step 4): sasl_passwd
stays root:root 0600 in every form hongyan reads (hash:, lmdb:, texthash:,
a pgsql: parameter file); the supervisor opens it and hands the descriptor
to the process that delivers, whose uid and gids cannot open the file; a
rebuilt table is handed over without a reload, and a reload hands over the
tables the new configuration names; a symbolic link is refused;
`hongyan config` warns when mail_owner could read the passwords. Against an
aiosmtpd relay with STARTTLS and AUTH (smtppeer.py), as the other relay
tests."""
import os
import subprocess

import pytest

import pgserver
from conftest import wait_for
from smtppeer import Peer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root needed: the files are root's")

LOCAL = {
    "myhostname": "mx.local.test",
    "mydomain": "local.test",
    "mydestination": "$myhostname, localhost, local.test",
    "smtpd_peername_lookup": "no",
}


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def delivering(srv):
    """The process that delivers: the delivery kind."""
    pids = srv.child_pids("delivery")
    assert len(pids) == 1, pids
    return pids[0]


def as_process(pid):
    """setpriv arguments that take on pid's uid, gid and supplementary groups."""
    st = status(pid)
    groups = ",".join(st["Groups"].split())
    args = ["setpriv", "--reuid=" + st["Uid"].split()[0], "--regid=" + st["Gid"].split()[0]]
    return args + (["--groups=" + groups] if groups else ["--clear-groups"])


def cannot_open(pid, path):
    r = subprocess.run(as_process(pid) + ["--", "cat", str(path)], capture_output=True,
                       timeout=10)
    return r.returncode != 0 and b"Permission denied" in r.stderr


def holds_open(pid, path):
    """Whether pid has a descriptor of path (the supervisor's, handed over)."""
    d = "/proc/%d/fd" % pid
    targets = []
    for fd in os.listdir(d):
        try:
            targets.append(os.readlink(os.path.join(d, fd)))
        except OSError:
            pass
    return str(path) in targets


def root_only(path, text):
    path.write_text(text)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)


def sasl_table(srv, kind, lines):
    """sasl_passwd root:root 0600, compiled when kind wants it; the spec and the file read."""
    path = srv.tmp / "sasl_passwd"
    root_only(path, "".join(l + "\n" for l in lines))
    spec = "%s:%s" % (kind, path)
    if kind == "texthash":
        return spec, path
    r = srv.cmd("map", "build", spec)
    assert r.returncode == 0, r.stderr
    db = srv.tmp / "sasl_passwd.lmdb"
    st = os.stat(db)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)  # as its source, as postmap does
    return spec, db


def relay_server(server_factory, relay, spec=None, **extra):
    settings = dict(LOCAL, relayhost="[127.0.0.1]:%d" % relay.port,
                    smtp_sasl_auth_enable="yes", smtp_tls_security_level="may",
                    minimal_backoff_time="1s", maximal_backoff_time="1s", queue_run_delay="1s")
    if spec:
        settings["smtp_sasl_password_maps"] = spec
    settings.update(extra)
    return server_factory(settings, start=False)


def send(srv, rcpt):
    r = srv.cmd("sendmail", "-f", "alice@local.test", rcpt, input="Subject: t\n\nhello\n")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("kind", ["hash", "lmdb", "texthash"])
def test_root_only_sasl_passwd_relays_and_stays_out_of_reach(server_factory, tmp_path, kind):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "s3cret"}) as relay:
        srv = relay_server(server_factory, relay)
        spec, opened = sasl_table(srv, kind, ["[127.0.0.1]:%d u1:s3cret" % relay.port])
        srv.settings["smtp_sasl_password_maps"] = spec
        srv.write_config()
        srv.start()
        pid = delivering(srv)
        # The delivering process holds the file open, and its uid/gids cannot open it.
        assert holds_open(pid, opened), os.listdir("/proc/%d/fd" % pid)
        assert cannot_open(pid, opened)
        assert cannot_open(pid, srv.tmp / "sasl_passwd")
        # No other child gets it: the keeper, and smtpd, the network-facing one.
        others = srv.child_pids("keeper") + srv.child_pids("smtpd")
        assert srv.child_pids("keeper") and srv.child_pids("smtpd")
        for other in others:
            assert not holds_open(other, opened) and cannot_open(other, opened), other
        send(srv, "bob@example.net")
        assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()[-3000:]
        assert relay.auth_ok == [("u1", "PLAIN")]
        text = srv.log_text()
        assert "s3cret" not in text
        assert "readable by mail_owner" not in text


def test_rebuilt_table_is_handed_over_without_a_reload(server_factory, tmp_path):
    """postmap's way: a new file renamed into place; the supervisor sees it and
    sends it, as Postfix's daemons pick up a rebuilt table by themselves."""
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "new-one"}) as relay:
        srv = relay_server(server_factory, relay)
        spec, db = sasl_table(srv, "hash", ["[127.0.0.1]:%d u1:old-one" % relay.port])
        srv.settings["smtp_sasl_password_maps"] = spec
        srv.write_config()
        srv.start()
        send(srv, "bob@example.net")
        assert wait_for(lambda: relay.auth_failed, timeout=20), srv.log_text()[-3000:]
        assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=10)
        old_inode = os.stat(db).st_ino
        spec, db = sasl_table(srv, "hash", ["[127.0.0.1]:%d u1:new-one" % relay.port])
        assert os.stat(db).st_ino != old_inode
        assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()[-3000:]
        assert relay.auth_ok == [("u1", "PLAIN")]
        text = srv.log_text()
        assert "%s changed; handing the files over again" % db in text, text[-3000:]
        assert "the rebuilt table is in use" in text
        pid = delivering(srv)
        assert holds_open(pid, db) and cannot_open(pid, db)


def test_reload_hands_over_the_tables_the_new_configuration_names(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "right"}) as relay:
        srv = relay_server(server_factory, relay)
        spec, _ = sasl_table(srv, "lmdb", ["[127.0.0.1]:%d u1:wrong" % relay.port])
        srv.settings["smtp_sasl_password_maps"] = spec
        srv.write_config()
        srv.start()
        send(srv, "bob@example.net")
        assert wait_for(lambda: relay.auth_failed, timeout=20), srv.log_text()[-3000:]
        other = srv.tmp / "sasl_passwd2"
        root_only(other, "[127.0.0.1]:%d u1:right\n" % relay.port)
        assert srv.cmd("map", "build", "lmdb:%s" % other).returncode == 0
        srv.settings["smtp_sasl_password_maps"] = "lmdb:%s" % other
        srv.reload()  # writes main.cf, SIGHUP
        assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()[-3000:]
        assert relay.auth_ok == [("u1", "PLAIN")]
        pid = delivering(srv)
        db = srv.tmp / "sasl_passwd2.lmdb"
        assert holds_open(pid, db) and cannot_open(pid, db)


def test_symlinked_sasl_passwd_is_refused(server_factory, tmp_path):
    """A link to a file mail_owner controls: root does not follow it, and the
    delivering process does not open the path itself either."""
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "planted"}) as relay:
        srv = relay_server(server_factory, relay)
        planted = srv.data / "planted_passwd"
        srv.data.mkdir(parents=True, exist_ok=True)
        planted.write_text("[127.0.0.1]:%d u1:planted\n" % relay.port)
        os.chown(planted, 0, 0)
        os.chmod(planted, 0o644)
        link = srv.tmp / "sasl_passwd"
        os.symlink(planted, link)
        srv.settings["smtp_sasl_password_maps"] = "texthash:%s" % link
        srv.write_config()
        srv.start()
        send(srv, "bob@example.net")
        assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=20), \
            srv.log_text()[-3000:]
        text = srv.log_text()
        assert "%s is a symbolic link: root opens relay password files only without " \
               "following one" % link in text, text[-3000:]
        assert "Too many levels of symbolic links" in text  # the delivery's own reason
        assert not relay.auth_ok and not relay.messages


def test_missing_table_defers_with_the_usual_advice(server_factory, tmp_path):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "p1"}) as relay:
        srv = relay_server(server_factory, relay, "hash:%s" % (tmp_path / "nowhere" / "sasl"))
        srv.write_config()
        srv.start()
        send(srv, "bob@example.net")
        assert wait_for(lambda: "status=deferred" in srv.log_text(), timeout=20), \
            srv.log_text()[-3000:]
        text = srv.log_text()
        assert "smtp_sasl_password_maps: cannot open" in text  # the master's line
        assert "run `hongyan map build hash:%s" % (tmp_path / "nowhere" / "sasl") in text
        assert not relay.messages


def test_config_and_master_warn_when_mail_owner_can_read_the_passwords(server_factory,
                                                                       tmp_path):
    with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "p1"}) as relay:
        srv = relay_server(server_factory, relay)
        spec, _ = sasl_table(srv, "texthash", ["[127.0.0.1]:%d u1:p1" % relay.port])
        srv.settings["smtp_sasl_password_maps"] = spec
        srv.write_config()
        r = srv.cmd("config", "smtp_sasl_password_maps")
        assert r.returncode == 0 and "readable by mail_owner" not in r.stderr, r.stderr
        os.chmod(srv.tmp / "sasl_passwd", 0o644)
        r = srv.cmd("config", "smtp_sasl_password_maps")
        assert "%s (owner 0, mode 0644) is readable by mail_owner hongyan" % (
            srv.tmp / "sasl_passwd") in r.stderr, r.stderr
        os.chmod(srv.tmp / "sasl_passwd", 0o640)
        os.chown(srv.tmp / "sasl_passwd", 0, 0)
        assert "readable by mail_owner" not in srv.cmd("config").stderr
        os.chown(srv.tmp / "sasl_passwd", 0, status_gid("hongyan"))
        assert "readable by mail_owner" in srv.cmd("config").stderr
        # The master says it at start too; the relay still works (no worse than before).
        srv.start()
        assert "is readable by mail_owner hongyan" in srv.log_text()
        send(srv, "bob@example.net")
        assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()[-3000:]


def status_gid(user):
    import pwd
    return pwd.getpwnam(user).pw_gid


@pytest.mark.skipif(not pgserver.available(), reason="PostgreSQL 15 (Debian postgresql) needed")
def test_pgsql_parameter_file_is_root_only(server_factory, tmp_path):
    pg = pgserver.PgServer()
    try:
        pg.psql(pgserver.MAIL_SCHEMA)
        with Peer(tmp=tmp_path, tls=True, require_starttls=True, users={"u1": "p1"}) as relay:
            pg.psql("SET ROLE mail; CREATE TABLE sasl (k text PRIMARY KEY, cred text NOT NULL);"
                    "INSERT INTO sasl VALUES ('[127.0.0.1]:%d', 'u1:p1');" % relay.port,
                    db="mail")
            cf = pgserver.table_file(tmp_path / "sasl.cf", pg,
                                     "SELECT cred FROM sasl WHERE k='%s'")
            os.chown(cf, 0, 0)
            os.chmod(cf, 0o600)
            srv = relay_server(server_factory, relay, "pgsql:%s" % cf)
            srv.write_config()
            srv.start()
            pid = delivering(srv)
            assert holds_open(pid, cf) and cannot_open(pid, cf)
            send(srv, "bob@example.net")
            assert wait_for(lambda: relay.messages, timeout=20), srv.log_text()[-3000:]
            assert relay.auth_ok == [("u1", "PLAIN")]
            assert "mail-secret" not in srv.log_text()
    finally:
        pg.destroy()
