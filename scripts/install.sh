#!/bin/sh
# make install: the binary, the sendmail-named links, the systemd unit, the
# man page and (if absent) the packaged /etc/hongyan/main.cf. debian/rules
# installs the package through this script too.
#
# Environment: DESTDIR (staging root); POSTFIX_LINKS=yes also links postconf
# and postmap (left out by default so that they never shadow a Postfix
# installed on the same machine); SYSTEMD_UNIT_DIR (default
# /etc/systemd/system; the Debian package uses /lib/systemd/system).
set -eu
build=$1; prefix=$2
top=$(cd "$(dirname "$0")/.." && pwd)
destdir=${DESTDIR:-}
unitdir=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}
install -d "$destdir$prefix/sbin" "$destdir$prefix/share/man/man8" \
  "$destdir/etc/hongyan" "$destdir$unitdir"
install -m 0755 "$top/$build/hongyan" "$destdir$prefix/sbin/hongyan"
# The local submission helper, setgid to setgid_group (docs/submission.md,
# "Local submission boundary"); sendmail finds it beside the binary.
if [ "$(id -u)" -eq 0 ] && getent group hongyan-drop >/dev/null 2>&1; then
  install -m 2755 -o root -g hongyan-drop "$top/$build/hongyan-postdrop" \
    "$destdir$prefix/sbin/hongyan-postdrop"
else
  install -m 0755 "$top/$build/hongyan-postdrop" "$destdir$prefix/sbin/hongyan-postdrop"
  echo "note: make $prefix/sbin/hongyan-postdrop setgid: groupadd --system hongyan-drop &&" \
    "chgrp hongyan-drop $prefix/sbin/hongyan-postdrop && chmod 2755 $prefix/sbin/hongyan-postdrop"
fi
names="sendmail mailq newaliases"
[ "${POSTFIX_LINKS:-no}" = yes ] && names="$names postmap postconf"
for name in $names; do
  ln -sf hongyan "$destdir$prefix/sbin/$name"
done
install -m 0644 "$top/docs/man/hongyan.8" "$destdir$prefix/share/man/man8/hongyan.8"
sed "s|@PREFIX@|$prefix|g" "$top/etc/hongyan.service" > "$destdir$unitdir/hongyan.service"
chmod 0644 "$destdir$unitdir/hongyan.service"
[ -e "$destdir/etc/hongyan/main.cf" ] || install -m 0644 "$top/etc/main.cf" "$destdir/etc/hongyan/main.cf"
echo "installed hongyan into $destdir$prefix (create the users and group with: useradd --system --home-dir /var/lib/hongyan --shell /usr/sbin/nologin hongyan; useradd --system --user-group --no-create-home --shell /usr/sbin/nologin hongyan-keys; groupadd --system hongyan-drop)"
