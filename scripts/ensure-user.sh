#!/bin/sh
# As root, the server drops privileges to mail_owner (default "hongyan");
# tests run as root in CI, so the account must exist.
set -eu
[ "$(id -u)" -eq 0 ] || exit 0
id hongyan >/dev/null 2>&1 && exit 0
useradd --system --home-dir /var/lib/hongyan --no-create-home \
  --shell /usr/sbin/nologin hongyan
echo "created system user hongyan"
