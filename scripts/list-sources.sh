#!/bin/sh
# Prints the C files under the folder given, one per line, for meson.build.
cd "$(dirname "$0")/.." && find "$1" -name '*.c' | LC_ALL=C sort
