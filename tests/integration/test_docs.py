"""The project's own docs stay true to the code: the configuration reference
is generated from the key table, and every key the binary knows is in it."""
import subprocess

from conftest import ROOT, run


def test_configuration_reference_is_current():
    r = subprocess.run(["/usr/bin/python3", str(ROOT / "scripts/gen-config-doc.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_key_is_documented():
    doc = (ROOT / "docs/configuration.md").read_text()
    keys = [line.split(" = ")[0] for line in run(["config", "-d"], check=True).stdout.splitlines()]
    assert len(keys) > 50
    missing = [k for k in keys if "| `%s` |" % k not in doc]
    assert not missing, missing


def test_readme_opens_with_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "make run" in head and "make test" in head
