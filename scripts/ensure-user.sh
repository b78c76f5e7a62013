#!/bin/sh
# As root, the server drops privileges to mail_owner (default "hongyan"),
# and local submission goes through hongyan-postdrop, setgid to the
# setgid_group (default "hongyan-drop"); tests run as root in CI, so the
# account and the group must exist.
set -eu
[ "$(id -u)" -eq 0 ] || exit 0
if ! getent group hongyan-drop >/dev/null 2>&1; then
  groupadd --system hongyan-drop
  echo "created system group hongyan-drop"
fi
id hongyan >/dev/null 2>&1 && exit 0
useradd --system --home-dir /var/lib/hongyan --no-create-home \
  --shell /usr/sbin/nologin hongyan
echo "created system user hongyan"
