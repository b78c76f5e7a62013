"""`hongyan config` (postconf) against real files: printing, -n, -d, -e
keeping comments, and broken lines reported with their line number."""
import os

from conftest import BIN, run


def test_broken_line_is_reported_with_its_number(tmp_path):
    cfg = tmp_path / "main.cf"
    cfg.write_text("myhostname = mx.example.com\n# fine\n\nrelayhost = [r.example.com]:587\n"
                   "smtp_tls_security_level = sometimes\n")
    r = run(["-c", str(cfg), "config"])
    assert r.returncode == 78, r
    assert "%s:5: smtp_tls_security_level" % cfg in r.stderr
    cfg.write_text("myhostname = mx.example.com\nmyhostnme = typo.example.com\n")
    r = run(["-c", str(cfg), "config", "myhostname"])
    assert r.returncode == 78
    assert "%s:2: unknown key 'myhostnme'" % cfg in r.stderr


def test_print_set_defaults_and_expansion(tmp_path):
    cfg = tmp_path / "main.cf"
    cfg.write_text("myhostname = mx.example.com\nrelayhost = [$mydomain]:587\n")
    r = run(["-c", str(cfg), "config", "-n"], check=True)
    assert r.stdout == "myhostname = mx.example.com\nrelayhost = [$mydomain]:587\n"
    r = run(["-c", str(cfg), "config", "-x", "relayhost", "mydomain"], check=True)
    assert r.stdout == "relayhost = [example.com]:587\nmydomain = example.com\n"
    r = run(["-c", str(cfg), "config", "-d", "maximal_queue_lifetime", "smtpd_tls_auth_only"],
            check=True)
    assert r.stdout == "maximal_queue_lifetime = 5d\nsmtpd_tls_auth_only = yes\n"
    r = run(["-c", str(cfg), "config", "mail_version"], check=True)
    assert r.stdout.startswith("mail_version = ")
    version = run(["version"], check=True).stdout.split()[1]
    assert r.stdout.strip().endswith(version)


def test_edit_keeps_comments_and_refuses_breakage(tmp_path):
    cfg = tmp_path / "main.cf"
    original = ("# Relay through the provider\n"
                "relayhost = old.example.com\n"
                "    # still a comment\n"
                "mydestination = a.example,\n"
                "  b.example\n"
                "# trailing comment\n")
    cfg.write_text(original)
    run(["-c", str(cfg), "config", "-e", "mydestination = c.example",
         "smtp_tls_security_level = encrypt"], check=True)
    assert cfg.read_text() == ("# Relay through the provider\n"
                               "relayhost = old.example.com\n"
                               "    # still a comment\n"
                               "mydestination = c.example\n"
                               "# trailing comment\n"
                               "smtp_tls_security_level = encrypt\n")
    before = cfg.read_text()
    r = run(["-c", str(cfg), "config", "-e", "smtp_tls_security_level = sometimes"])
    assert r.returncode != 0
    assert cfg.read_text() == before


def test_postconf_name(tmp_path):
    link = tmp_path / "postconf"
    os.symlink(BIN, link)
    cfg = tmp_path / "main.cf"
    cfg.write_text("myhostname = mx.example.com\n")
    import subprocess
    r = subprocess.run([str(link), "-n"], capture_output=True, text=True,
                       env=dict(os.environ, HONGYAN_CONFIG=str(cfg)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "myhostname = mx.example.com\n"
