#!/bin/sh
# Fails when a file under src/ includes a header from a folder above its
# own. The order is written once, in the "layers" block of
# docs/architecture.md (lowest first); a folder may include its own headers
# and those of any folder listed before it. src/*.c files outside a folder
# (main.c) are the layer "main". Words after a folder's name that start
# with "!" name lower folders it must not include all the same (parts of
# two processes side by side, e.g. "qmgr !smtpd"). A folder missing from
# the list is an error too, so a new folder gets its place when it is
# added. fuzz/ and tests/ are not checked: they may include anything.
#
#   scripts/check-layers.sh          check, print each offending include
#   scripts/check-layers.sh --print  print the order, lowest first
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
doc="$root/docs/architecture.md"

# The fenced block that starts with a line "```layers": one folder per line,
# then its "!folder" exclusions; "#" starts a comment.
block=$(awk '
    /^```layers[ \t]*$/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { sub(/#.*/, ""); if (NF) print }
' "$doc")
if [ -z "$block" ]; then
    echo "check-layers: no \`\`\`layers block in $doc" >&2
    exit 2
fi

if [ "${1:-}" = "--print" ]; then
    echo "$block" | awk '{
        printf "%s%s", (NR > 1 ? " < " : ""), $1
        for (j = 2; j <= NF; j++)
            printf " %s", $j
    } END { print "" }'
    exit 0
fi

cd "$root"
find src -name '*.c' -o -name '*.h' | LC_ALL=C sort | xargs grep -nE '^[ \t]*#[ \t]*include[ \t]+"[^"/]+/' |
    awk -v block="$block" '
    BEGIN {
        n = split(block, lines, "\n")
        for (i = 1; i <= n; i++) {
            w = split(lines[i], words, /[ \t]+/)
            rank[words[1]] = i
            for (j = 2; j <= w; j++)
                if (words[j] ~ /^!/)
                    banned[words[1] SUBSEP substr(words[j], 2)] = 1
        }
        bad = 0
    }
    {
        # file:line:#include "dir/header.h"
        file = $0; sub(/:.*/, "", file)
        rest = substr($0, length(file) + 2)
        line = rest; sub(/:.*/, "", line)
        text = substr(rest, length(line) + 2)
        target = text; sub(/^[^"]*"/, "", target); sub(/\/.*/, "", target)
        from = file; sub(/^src\//, "", from)
        from = (from ~ /\//) ? substr(from, 1, index(from, "/") - 1) : "main"
        if (!(from in rank)) {
            if (!(from in unlisted))
                printf "%s: folder src/%s is not in the layers block of docs/architecture.md\n", file, from
            unlisted[from] = 1
            bad = 1
            next
        }
        if (!(target in rank)) {
            printf "%s:%s: includes \"%s/\", a folder not in the layers block\n", file, line, target
            bad = 1
        } else if (rank[target] > rank[from]) {
            printf "%s:%s: %s includes %s, a higher layer: %s\n", file, line, from, target, text
            bad = 1
        } else if ((from SUBSEP target) in banned) {
            printf "%s:%s: %s must not include %s (\"!%s\" in the layers block): %s\n", file, line,
                   from, target, target, text
            bad = 1
        }
    }
    END { exit bad }
' || {
    echo "check-layers: includes against the layer order (docs/architecture.md, \"Layers\")" >&2
    exit 1
}
