#!/bin/sh
# Prints the C files under the folders given, one per line, for meson.build.
cd "$(dirname "$0")/.." && find "$@" -name '*.c' 2>/dev/null | LC_ALL=C sort
