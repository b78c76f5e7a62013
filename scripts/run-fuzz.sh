#!/bin/sh
# Runs every fuzz target for a bounded time on its corpus in fuzz/corpus/.
set -eu
dir=$1; secs=$2
top=$(cd "$(dirname "$0")/.." && pwd)
found=0
for bin in "$dir"/fuzz_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  found=1
  name=$(basename "$bin")
  corpus="$top/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  mkdir -p "$corpus"
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
    "$work" "$corpus" >"$work.log" 2>&1 || { tail -60 "$work.log"; exit 1; }
  rm -rf "$work" "$work.log"
done
[ "$found" -eq 1 ] || echo "fuzz: no targets built"
