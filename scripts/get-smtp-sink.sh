#!/bin/sh
# Puts Postfix's smtp-sink (a test SMTP server that pipelines) under DIR
# without installing the postfix service: `apt-get download` then `dpkg -x`.
# Prints a command that runs it (with its private libraries) on stdout.
# Usage: scripts/get-smtp-sink.sh DIR
set -eu
dir=$1
run="$dir/smtp-sink"
if [ -x "$run" ]; then echo "$run"; exit 0; fi
if command -v smtp-sink >/dev/null 2>&1; then command -v smtp-sink; exit 0; fi
mkdir -p "$dir/deb"
cd "$dir/deb"
apt-get download postfix >/dev/null 2>&1 || { echo "get-smtp-sink: apt-get download postfix failed" >&2; exit 69; }
dpkg -x postfix_*.deb "$dir/root"
cat >"$run.tmp" <<EOT
#!/bin/sh
LD_LIBRARY_PATH="$dir/root/usr/lib/postfix" exec "$dir/root/usr/sbin/smtp-sink" "\$@"
EOT
chmod 755 "$run.tmp"
mv "$run.tmp" "$run"
echo "$run"
