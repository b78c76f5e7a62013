"""Every command and subcommand answers -h and --help with its usage on
stdout and exit 0, also under the Postfix names (where -h keeps Postfix's
meaning: postconf -h prints values alone)."""
import os
import subprocess

import pytest

from conftest import BIN, run

COMMANDS = [[], ["serve"], ["sendmail"], ["queue"], ["queue", "show"], ["queue", "flush"],
            ["config"], ["map"], ["map", "build"], ["map", "query"], ["aliases"], ["dkim"],
            ["dkim", "keygen"], ["dkim", "show"], ["dkim", "sign"], ["dkim", "verify"], ["spf"],
            ["user"], ["user", "add"], ["user", "list"], ["doctor"], ["version"]]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "hongyan")
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(words, flag):
    if words == ["sendmail"] and flag == "-h":
        pytest.skip("sendmail -h is a hop count, as in Postfix")
    r = run(words + [flag], timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: hongyan"), r.stdout
    if words:
        assert " ".join(words[:1]) in r.stdout.splitlines()[0]
    assert r.stderr == ""


@pytest.mark.parametrize("name", ["sendmail", "mailq", "newaliases", "postmap", "postconf"])
def test_help_under_postfix_names(tmp_path, name):
    link = tmp_path / name
    os.symlink(BIN, link)
    r = subprocess.run([str(link), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("usage: %s" % name), r


def test_postconf_h_prints_values(tmp_path):
    cfg = tmp_path / "main.cf"
    cfg.write_text("myhostname = mx.example.com\nbiff = no\n")
    link = tmp_path / "postconf"
    os.symlink(BIN, link)
    r = subprocess.run([str(link), "-h", "myhostname", "biff"], capture_output=True, text=True,
                       env=dict(os.environ, HONGYAN_CONFIG=str(cfg)), timeout=10)
    assert r.returncode == 0 and r.stdout == "mx.example.com\nno\n", r


def test_unknown_command_is_a_usage_error():
    r = run(["frobnicate"], timeout=10)
    assert r.returncode == 64 and "unknown command" in r.stderr
