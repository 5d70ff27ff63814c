#!/usr/bin/env bash
# scripts/check-layers.sh - keep the layers one-way (docs/ARCHITECTURE.md,
# "Layers"). For every file under src/<layer>/, src/main.c and every public
# header include/ringcast/Y.h (whose layer is that of Y), each
# `#include "ringcast/X.h"` must name a header of the same layer or a lower
# one. A header's layer is the folder of its module's .c (src/<layer>/X.c);
# header-only headers are mapped in header_only below. Siblings (proto and
# match; auth and store) may not include each other. A private header
# (src/<layer>/*.h) is included from its own folder only.
#
# scripts/layers-allow.txt lists the inversions still tolerated, one
# `file header` pair per line (`#` starts a comment: say which change removes
# it). An allowed pair that no longer occurs is reported so the list shrinks.
# Prints each violation as `src/loop/shard.c includes ringcast/http.h
# (session > loop)`; exits 1 if any is not allowed.
set -uo pipefail
cd "$(dirname "$0")/.."

# layer -> rank; equal ranks are siblings
declare -A rank=([core]=0 [proto]=1 [match]=1 [loop]=2 [auth]=3 [store]=3 [webhook]=3
    [broker]=4 [session]=5 [api]=6 [cli]=7 [main]=8)
# headers with no .c of their own
declare -A header_only=([ticket.h]=proto [api_key.h]=core [answer.h]=loop [histo.h]=core)

layer_of_header() { # X.h -> layer, or empty
    local h=$1 c
    if [ -n "${header_only[$h]:-}" ]; then
        echo "${header_only[$h]}"
        return
    fi
    for c in src/*/"${h%.h}.c"; do
        [ -f "$c" ] && basename "$(dirname "$c")" && return
    done
}

declare -A allowed=() seen=()
allow_file=scripts/layers-allow.txt
if [ -f "$allow_file" ]; then
    while read -r f h _; do
        [ -n "$f" ] && [ -n "$h" ] && allowed["$f $h"]=1
    done < <(sed 's/#.*//' "$allow_file")
fi

bad=0
tolerated=0
files=$(find src -mindepth 2 -type f \( -name '*.c' -o -name '*.h' \) | sort)
[ -f src/main.c ] && files="$files src/main.c"
files="$files $(find include/ringcast -maxdepth 1 -name '*.h' | sort)"
for f in $files; do
    if [ "$f" = src/main.c ]; then
        fl=main
    elif [[ $f == include/ringcast/* ]]; then
        fl=$(layer_of_header "$(basename "$f")")
        if [ -z "$fl" ]; then
            echo "$f: no layer (no src/*/$(basename "$f" .h).c; map it in scripts/check-layers.sh)"
            bad=1
            continue
        fi
    else
        fl=$(basename "$(dirname "$f")")
    fi
    if [ -z "${rank[$fl]:-}" ]; then
        echo "$f: folder $fl is not a layer (add it to scripts/check-layers.sh)"
        bad=1
        continue
    fi
    # ringcast/X.h, and private headers of another folder ("../L/X.h", or
    # "L/X.h" from src/main.c): the latter are named by their path
    for h in $(grep -oE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"(ringcast|\.\./[a-z]+|[a-z]+)/[A-Za-z0-9_]+\.h"' "$f" |
        sed -E 's/.*"(.*)"/\1/; s#^\.\./##; s#^ringcast/##'); do
        if [[ $h == */* ]]; then
            hl=${h%%/*}
            [ -n "${rank[$hl]:-}" ] || continue # not a layer folder
            name="src/$h"
        else
            hl=$(layer_of_header "$h")
            name="ringcast/$h"
        fi
        if [ -z "$hl" ]; then
            echo "$f includes ringcast/$h (no layer: no src/*/${h%.h}.c; map it in scripts/check-layers.sh)"
            bad=1
            continue
        fi
        [ "$hl" = "$fl" ] && continue
        if [[ $name == src/* ]]; then
            why="private to $hl" # a private header stays in its folder
        elif [ "${rank[$hl]}" -lt "${rank[$fl]}" ]; then
            continue
        elif [ "${rank[$hl]}" -eq "${rank[$fl]}" ]; then
            why="$hl and $fl are siblings"
        else
            why="$hl > $fl"
        fi
        if [ -n "${allowed["$f $name"]:-}" ]; then
            seen["$f $name"]=1
            tolerated=$((tolerated + 1))
            continue
        fi
        echo "$f includes $name ($why)"
        bad=1
    done
done

for k in "${!allowed[@]}"; do
    [ -z "${seen[$k]:-}" ] && echo "layers: $allow_file: '$k' no longer occurs: remove it"
done
if [ "$bad" -ne 0 ]; then
    echo "layers: inversions found (docs/ARCHITECTURE.md, \"Layers\")"
    exit 1
fi
echo "layers: ok ($tolerated inversion(s) still allowed by $allow_file)"
