"""Times DKIM commands for bench.py's `dkim` scenario, inside a private network
and mount namespace: `unshare --net --mount python3 dkim_netns.py SPEC.json`.

opendkim-testmsg has no resolver option (libopendkim asks glibc, which reads
/etc/resolv.conf and always uses port 53), so, as tests/integration/
opendkim_netns.py does, this serves the TXT records of SPEC["keys"] with
dnslib on 127.0.0.1:53 of a private loopback and bind-mounts a resolv.conf
naming it over /etc/resolv.conf. hongyan is given the same server through
`dns_resolver = 127.0.0.1` in its main.cf, so both verifiers ask the same
DNS server for the same keys.

SPEC["jobs"]: [{"name", "cmd": [...], "input": PATH, "expect_rc": 0, "nonzero"
or null, "expect_out": "text" or null}]; each is run SPEC["n"] times, one process per
run, in SPEC["rounds"] interleaved rounds (so that a change of the machine's
load during the run falls on every job alike). Prints a JSON object
{name: {"runs", "wall", "cpu", "walls", "cpus", "error"}} with wall-clock and
CPU seconds (user + system of the child processes, from getrusage) in total
and per run. Every loop
is bounded: n runs per job, each with a timeout, and an overall deadline.
"""
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "tests", "integration"))
from opendkim_netns import key_dns  # noqa: E402


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_jobs(spec):
    jobs = spec["jobs"]
    n, rounds = spec["n"], max(1, spec.get("rounds", 1))
    deadline = time.monotonic() + spec.get("timeout", 600)
    res = {j["name"]: {"runs": 0, "wall": 0.0, "cpu": 0.0, "walls": [], "cpus": [], "error": ""} for j in jobs}
    inputs = {j["name"]: open(j["input"], "rb").read() for j in jobs}
    per_round = [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]
    for k in per_round:
        for j in jobs:
            r = res[j["name"]]
            if r["error"]:
                continue
            for _ in range(k):
                if time.monotonic() > deadline:
                    r["error"] = "timed out"
                    break
                c0, t0 = child_cpu(), time.monotonic()
                try:
                    p = subprocess.run(j["cmd"], input=inputs[j["name"]], capture_output=True, timeout=30)
                except (OSError, subprocess.TimeoutExpired) as e:
                    r["error"] = str(e)
                    break
                wall, cpu = time.monotonic() - t0, child_cpu() - c0
                r["wall"] += wall
                r["cpu"] += cpu
                r["walls"].append(wall)
                r["cpus"].append(cpu)
                r["runs"] += 1
                want = j.get("expect_rc")
                bad = (p.returncode == 0) if want == "nonzero" else (want is not None and p.returncode != want)
                if not bad and j.get("expect_out") and j["expect_out"].encode() not in p.stdout:
                    bad = True
                if bad:
                    lines = (p.stdout + p.stderr).decode(errors="replace").strip().splitlines()
                    r["error"] = "exit %d: %s" % (p.returncode, lines[-1] if lines else "no output")
                    break
    return res


def main():
    spec = json.load(open(sys.argv[1]))
    with key_dns(spec["keys"]):
        json.dump(run_jobs(spec), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
