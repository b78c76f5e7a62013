#!/bin/bash
# hongyan benchmarks: hongyan vs a private Postfix instance vs smtp-sink, on
# loopback high ports, in one run. Fetches Postfix's .deb and unpacks it with
# dpkg -x (nothing is installed system-wide), then runs bench/bench.py.
# Usage: bench/run.sh [--quick] [--sustained] [--only SCENARIO,...] [--servers postfix,hongyan[,hongyan-base]]
# (hongyan-base: HONGYAN_BASE_BIN=/path/to/another/hongyan, the "before" of a change)
# See bench/README.md for the method.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/out}
PFROOT=$OUT/postfix-root
mkdir -p "$OUT"

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: must run as root (Postfix's master and hongyan's supervisor drop privileges themselves)" >&2
	exit 77
fi

# Postfix's binaries, unpacked from the Debian package into bench/out. The
# libraries it links against (libdb5.3, libicu72, libsasl2-2, libssl3, libnsl2)
# are installed if missing; postfix itself is not, so no system MTA appears.
# postfix-pgsql (its pgsql: table module) comes too, for the pgsql: cases
# of compare_restrict.py.
if [ ! -x "$PFROOT/usr/sbin/smtp-source" ] || [ ! -x "$PFROOT/usr/lib/postfix/sbin/master" ] ||
	[ ! -f "$PFROOT/usr/lib/postfix/postfix-pgsql.so" ]; then
	echo "== fetching Postfix (apt-get download postfix postfix-pgsql; dpkg -x)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download postfix postfix-pgsql >/dev/null 2>&1) ||
		{ apt-get update -qq && (cd "$tmp" && apt-get download postfix postfix-pgsql >/dev/null 2>&1); }
	deb=$(ls "$tmp"/postfix_*.deb)
	missing=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -n 's/^ *\(lib[a-z0-9.+-]*\).*/\1/p' |
		while read -r p; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
	if [ -n "$missing" ]; then
		echo "== installing Postfix's libraries: $missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	fi
	rm -rf "$PFROOT"
	dpkg -x "$deb" "$PFROOT"
	# Without the module (package not available) the pgsql: comparisons are skipped.
	for pg in "$tmp"/postfix-pgsql_*.deb; do
		[ -f "$pg" ] && dpkg -x "$pg" "$PFROOT"
	done
	dpkg-deb -f "$deb" Version >"$PFROOT/VERSION"
	rm -rf "$tmp"
	trap - EXIT
fi

# Tools of the other scenarios: strace (sync calls in the untimed durability
# probe), openssl (certificate and DKIM keys), opendkim-testmsg (DKIM).
need=""
command -v strace >/dev/null || need="$need strace"
command -v openssl >/dev/null || need="$need openssl"
command -v opendkim-testmsg >/dev/null || need="$need opendkim-tools"
if [ -n "$need" ]; then
	echo "== installing:$need"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null ||
		echo "bench/run.sh: could not install$need; those scenarios will report it" >&2
fi

# Accounts Postfix needs (the package would create the same ones), and
# hongyan's mail_owner.
getent group postdrop >/dev/null || groupadd --system postdrop
getent passwd postfix >/dev/null ||
	useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin --user-group postfix
# postdrop/postqueue are setgid postdrop in the package; restore that so
# `postfix check` is quiet (we never use them).
chgrp postdrop "$PFROOT/usr/sbin/postdrop" "$PFROOT/usr/sbin/postqueue"
chmod 2755 "$PFROOT/usr/sbin/postdrop" "$PFROOT/usr/sbin/postqueue"
"$ROOT/scripts/ensure-user.sh"

# 10,000 idle sessions need file descriptors on both ends: raise the limit
# for this run only (never in hongyan's defaults).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# bench.py stops everything it starts (finally + signal handlers). This trap
# is the second line, should bench.py itself die: every Postfix instance under
# bench/out is stopped, and every process group bench.py recorded is killed.
stop_all() {
	local conf pidf pid
	for conf in "$OUT"/postfix*/conf "$OUT"/spoolfs/*postfix*/conf "$OUT"/lean-postfix*/conf; do
		pidf=${conf%/conf}/queue/pid/master.pid
		[ -f "$pidf" ] || continue
		pid=$(tr -dc 0-9 <"$pidf")
		[ -n "$pid" ] && [ -d "/proc/$pid" ] || continue
		echo "bench/run.sh: stopping Postfix in ${conf%/conf}" >&2
		LD_LIBRARY_PATH=$PFROOT/usr/lib/postfix timeout 30 "$PFROOT/usr/sbin/postfix" -c "$conf" stop >/dev/null 2>&1 || true
		sleep 1
		[ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	done
	if [ -f "$OUT/pids" ]; then
		while read -r pid; do
			[ -d "/proc/$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
		done <"$OUT/pids"
		rm -f "$OUT/pids"
	fi
	# The servers' cgroups (bench/lean.py's CpuGroup, named after bench.py's
	# pid, so another bench's are left alone): anything still in them, then them.
	if [ -n "$child" ]; then
		for cg in /sys/fs/cgroup/cpuacct/hybench-"$child"-* /sys/fs/cgroup/hybench-"$child"-*; do
			[ -d "$cg" ] || continue
			for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do
				kill -KILL "$pid" 2>/dev/null || true
			done
			sleep 0.2
			rmdir "$cg" 2>/dev/null || true
		done
	fi
	# bench/spoolfs.py's filesystem, should bench.py not have unmounted it.
	if mountpoint -q "$OUT/spoolfs"; then
		umount "$OUT/spoolfs" 2>/dev/null || umount -l "$OUT/spoolfs" || true
	fi
	if [ -f "$OUT/spool.img" ]; then
		losetup -j "$OUT/spool.img" | cut -d: -f1 | while read -r dev; do losetup -d "$dev" || true; done
		rm -f "$OUT/spool.img"
	fi
}
child=
trap 'stop_all' EXIT
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM HUP
trap '[ -n "$child" ] && kill -INT "$child" 2>/dev/null; wait "$child"; exit 130' INT

export BENCH_PFROOT=$PFROOT BENCH_OUT=$OUT BENCH_ROOT=$ROOT
rm -f "$OUT/pids"
/usr/bin/python3 "$ROOT/bench/bench.py" "$@" &
child=$!
wait "$child"
