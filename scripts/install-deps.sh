#!/bin/sh
# Installs the Debian 12 packages that building, running and testing hongyan
# need. Idempotent: it asks dpkg first and calls apt only for what is missing,
# so `make test` on a machine that has everything costs no network round trip.
set -eu

build_pkgs="build-essential pkg-config meson ninja-build clang clang-format libclang-rt-14-dev
  libevent-dev libssl-dev libunbound-dev liblmdb-dev lmdb-utils libcrypt-dev
  libpsl-dev libpq-dev publicsuffix libcmocka-dev openssl ca-certificates dns-root-data"
test_pkgs="python3 python3-pytest python3-aiosmtpd python3-dnslib python3-dkim
  python3-yaml python3-cryptography swaks opendkim-tools dovecot-core dovecot-lmtpd
  libsasl2-modules libnet-ssleay-perl prometheus pflogsumm chromium haproxy postgresql"

want="$build_pkgs"
[ "${1:-}" = "--test" ] && want="$build_pkgs $test_pkgs"

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
  exit 69
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
