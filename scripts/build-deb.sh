#!/bin/sh
# make deb: builds the Debian package from a clean copy of the tree (tracked
# and new files, no build directories), unsigned and offline, and runs
# lintian on it. Output in OUTDIR (default dist/): the .deb, its .buildinfo
# and .changes, lintian.txt, and tree.stamp (what tree it was built from: a
# second run on the same tree reuses the package).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-dist}
case $out in /*) ;; *) out=$top/$out ;; esac
cd "$top"
stamp=$( (git rev-parse HEAD; git status --porcelain --untracked-files=all -- . ':!dist' |
          sort; git diff HEAD -- . ':!dist') | sha256sum | cut -d' ' -f1)
if [ -f "$out/tree.stamp" ] && [ "$(cat "$out/tree.stamp")" = "$stamp" ] &&
   ls "$out"/hongyan_*.deb >/dev/null 2>&1; then
  echo "build-deb: $out has the package of this tree"
  exit 0
fi
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
work=$(mktemp -d /tmp/hongyan-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src="$work/hongyan-$version"
mkdir -p "$src"
git ls-files -co --exclude-standard -z | grep -zv '^dist/' |
  xargs -0 tar -cf - --no-recursion | tar -xf - -C "$src"
cd "$src"
DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1 || {
  tail -40 "$work/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed" >&2
  exit 1
}
mkdir -p "$out"
rm -f "$out"/hongyan_* "$out"/hongyan-dbgsym_*
cp "$work"/hongyan_*.deb "$work"/hongyan_*.buildinfo "$work"/hongyan_*.changes "$out"/
cp "$work"/hongyan-dbgsym_*.deb "$out"/ 2>/dev/null || true
deb=$(ls "$out"/hongyan_*.deb)
lintian --no-tag-display-limit "$deb" >"$out/lintian.txt" 2>&1 || true
if grep -q '^E:' "$out/lintian.txt"; then
  cat "$out/lintian.txt" >&2
  echo "build-deb: lintian found errors" >&2
  exit 1
fi
echo "$stamp" >"$out/tree.stamp"
echo "build-deb: $deb (lintian: $(grep -c '^W:' "$out/lintian.txt" || true) warnings, no errors)"
