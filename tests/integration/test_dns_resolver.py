"""Runs the C tests of src/dns (tests/unit/test_dns.c, built as `test_dns`
beside the hongyan binary under test) against the integration suite's DNS
server, so the unit suite needs no Python process of its own."""
import os
import pathlib
import subprocess

import pytest

from conftest import BIN, ROOT
from dnsserver import DNSServer

ZONE = ROOT / "tests" / "data" / "dns" / "zone.json"


def test_dns_resolver_unit_program():
    import json

    prog = pathlib.Path(BIN).parent / "test_dns"
    if not prog.exists():
        pytest.fail("%s not built (meson builds it with the unit tests)" % prog)
    with DNSServer(zone=json.loads(ZONE.read_text())) as srv:
        env = dict(os.environ, HONGYAN_TEST_DNS=srv.address)
        proc = subprocess.run([str(prog)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "[  PASSED  ]" in proc.stdout + proc.stderr
