#!/bin/sh
# make install: the binary, the Postfix-named links, the systemd unit, the
# man page and (if absent) the packaged /etc/hongyan/main.cf.
set -eu
build=$1; prefix=$2
top=$(cd "$(dirname "$0")/.." && pwd)
destdir=${DESTDIR:-}
install -d "$destdir$prefix/sbin" "$destdir$prefix/share/man/man8" \
  "$destdir/etc/hongyan" "$destdir/etc/systemd/system"
install -m 0755 "$top/$build/hongyan" "$destdir$prefix/sbin/hongyan"
for name in sendmail mailq newaliases postmap postconf; do
  ln -sf hongyan "$destdir$prefix/sbin/$name"
done
install -m 0644 "$top/docs/man/hongyan.8" "$destdir$prefix/share/man/man8/hongyan.8"
sed "s|@PREFIX@|$prefix|g" "$top/etc/hongyan.service" > "$destdir/etc/systemd/system/hongyan.service"
chmod 0644 "$destdir/etc/systemd/system/hongyan.service"
[ -e "$destdir/etc/hongyan/main.cf" ] || install -m 0644 "$top/etc/main.cf" "$destdir/etc/hongyan/main.cf"
echo "installed hongyan into $destdir$prefix (create the user with: useradd --system --home-dir /var/lib/hongyan --shell /usr/sbin/nologin hongyan)"
