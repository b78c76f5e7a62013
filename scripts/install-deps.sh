#!/bin/sh
# Installs the Debian 12 packages that one make target needs, and no more:
#   install-deps.sh build   compile hongyan and its unit tests (make, make unit)
#   install-deps.sh test    build + run every test (make test, make integration)
#   install-deps.sh fuzz    build + the libFuzzer toolchain (make fuzz)
# Idempotent: it asks dpkg first and calls apt only for what is missing, so a
# machine that has everything costs no network round trip, and a non-root user
# who has the packages builds without being asked for root.
set -eu

# Compiling, linking and the unit tests (cmocka); runtime data the binary reads.
build_pkgs="build-essential pkg-config meson ninja-build
  libevent-dev libssl-dev libunbound-dev liblmdb-dev libcrypt-dev
  libpsl-dev publicsuffix libcmocka-dev openssl ca-certificates dns-root-data
  libcurl4-openssl-dev zlib1g-dev libpq-dev libseccomp-dev"
# libFuzzer and the sanitizer runtime come with clang.
fuzz_pkgs="clang libclang-rt-14-dev"
# The integration suite's real peers and tools, the sanitizer build, and the
# format check that `make test` runs.
test_pkgs="$fuzz_pkgs clang-format lmdb-utils
  python3 python3-pytest python3-aiosmtpd python3-dnslib python3-dkim
  python3-yaml python3-cryptography swaks opendkim-tools dovecot-core dovecot-lmtpd
  libsasl2-modules libnet-ssleay-perl pflogsumm debhelper dpkg-dev lintian iproute2
  e2fsprogs mount postgrey
  python3-milter opendkim rspamd prometheus chromium haproxy postgresql systemd"

case "${1:-build}" in
build) want="$build_pkgs" ;;
fuzz) want="$build_pkgs $fuzz_pkgs" ;;
test | --test) want="$build_pkgs $test_pkgs" ;;
*)
  echo "usage: install-deps.sh [build|test|fuzz]" >&2
  exit 64
  ;;
esac

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
