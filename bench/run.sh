#!/bin/bash
# hongyan benchmarks: hongyan vs a private Postfix instance vs smtp-sink, on
# loopback high ports, in one run. Fetches Postfix's .deb and unpacks it with
# dpkg -x (nothing is installed system-wide), then runs bench/bench.py.
# Usage: bench/run.sh [--quick] [--only SCENARIO,...] [--servers postfix,hongyan]
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
if [ ! -x "$PFROOT/usr/sbin/smtp-source" ] || [ ! -x "$PFROOT/usr/lib/postfix/sbin/master" ]; then
	echo "== fetching Postfix (apt-get download postfix; dpkg -x)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download postfix >/dev/null 2>&1) ||
		{ apt-get update -qq && (cd "$tmp" && apt-get download postfix >/dev/null 2>&1); }
	deb=$(ls "$tmp"/postfix_*.deb)
	missing=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -n 's/^ *\(lib[a-z0-9.+-]*\).*/\1/p' |
		while read -r p; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
	if [ -n "$missing" ]; then
		echo "== installing Postfix's libraries: $missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	fi
	rm -rf "$PFROOT"
	dpkg -x "$deb" "$PFROOT"
	dpkg-deb -f "$deb" Version >"$PFROOT/VERSION"
	rm -rf "$tmp"
	trap - EXIT
fi

# strace counts sync calls in the (untimed) durability probe.
command -v strace >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null || true

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

export BENCH_PFROOT=$PFROOT BENCH_OUT=$OUT BENCH_ROOT=$ROOT
exec /usr/bin/python3 "$ROOT/bench/bench.py" "$@"
