#!/bin/sh
# Sets up (or refreshes) a Meson build directory. Meson lists sources
# explicitly; we compute the list from the tree and reconfigure only when it
# changed, so that new files are picked up without a manual step.
set -eu
dir=$1; shift
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
list=$(find src tests/unit fuzz -name '*.c' 2>/dev/null | LC_ALL=C sort)
if [ -f "$dir/build.ninja" ] && [ -f "$dir/.sources" ] &&
   [ "$list" = "$(cat "$dir/.sources")" ] && [ "$*" = "$(cat "$dir/.options" 2>/dev/null)" ]; then
  exit 0
fi
if [ -f "$dir/build.ninja" ]; then
  meson setup --reconfigure "$dir" "$@" >/dev/null
else
  meson setup "$dir" "$@" >/dev/null
fi
printf '%s\n' "$list" > "$dir/.sources"
printf '%s' "$*" > "$dir/.options"
