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
# keeper_user (default "hongyan-keys"), with a group of its own: the one
# process that reads the private keys and the users file runs as it.
if ! id hongyan-keys >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin hongyan-keys
  echo "created system user hongyan-keys"
fi
id hongyan >/dev/null 2>&1 && exit 0
useradd --system --home-dir /var/lib/hongyan --no-create-home \
  --shell /usr/sbin/nologin hongyan
echo "created system user hongyan"
