#!/bin/sh
# Run by ninja on every build (meson.build's `sources-fresh` target): Meson
# lists the C files when it configures, so a file added since then would be
# silently left out. Fail the build instead, saying how to refresh it.
# Usage: check-sources.sh BUILD_DIR
set -eu
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
now=$("$top/scripts/list-sources.sh" src tests/unit fuzz)
if [ "$now" != "$(cat "$build/sources.configured")" ]; then
  echo "hongyan: C files were added or removed since '$build' was configured;" >&2
  echo "run 'scripts/configure.sh $build' (or 'make'), which reconfigures it" >&2
  exit 1
fi
