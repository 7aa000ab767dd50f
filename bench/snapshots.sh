#!/usr/bin/env bash
# Many snapshots in one archive: does an append, a listing or an open cost
# more as the history grows (spec §9.3, §11.2; issue 13)?
#
#   bench/snapshots.sh SCRATCH_DIR [N]          (N appends, default 10000)
#
# Makes a tree of 200 files of about 3 KB, creates an archive of it, then
# appends N times, each time after changing one file (round robin). It
# records the archive's size after every append, and at 100, 1,000 and
# 10,000 snapshots (those up to N) times `ptar -r`, `ptar snapshots` (all of
# them, and `--latest 1`: opening the archive and reading one snapshot),
# `ptar -t` of the latest snapshot and `ptar --verify` (which walks every
# footer, so it is expected to grow), each the median of 5 runs.
# Prints a Markdown table; the raw sizes go to SCRATCH_DIR/sizes.csv.
#
# Environment: PTAR=path (default: cargo build --release, target/release/ptar),
# ENCRYPT=1 (an encrypted archive; PTAR_PASSPHRASE is set).
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
S=$(mkdir -p "$1" && cd "$1" && pwd)
N=${2:-10000}
if [ -z "${PTAR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p ptar-cli)
    PTAR=$ROOT/target/release/ptar
fi
cp "$PTAR" "$S/ptar"; P=$S/ptar
ENC=()
if [ "${ENCRYPT:-0}" = 1 ]; then
    export PTAR_PASSPHRASE=bench-passphrase
    ENC=(--encrypt --kdf-params 256,1,1)
fi
rm -rf "$S/tree" "$S/a.ptar" "$S/sizes.csv" "$S/times.csv"
mkdir -p "$S/tree"
python3 - "$S/tree" <<'PY'
import os, random, sys
r = random.Random(200)
words = [("w%d" % i) for i in range(500)]
for i in range(200):
    with open(os.path.join(sys.argv[1], "f%03d.txt" % i), "w") as f:
        f.write(" ".join(r.choice(words) for _ in range(500))[:3000] + "\n")
PY
cd "$S"
"$P" -c "${ENC[@]}" -f a.ptar tree
echo "snapshots,bytes" > sizes.csv
echo "snapshots,command,seconds" > times.csv
median5() { # command... -> median wall seconds of 5 runs
    local t=()
    for _ in 1 2 3 4 5; do
        local a b
        a=$(date +%s.%N); "$@" >/dev/null; b=$(date +%s.%N)
        t+=("$(echo "$b - $a" | bc)")
    done
    printf '%s\n' "${t[@]}" | sort -n | sed -n 3p
}
measure() { # at snapshot count $1
    local n=$1
    # -r itself: 5 more appends, the median; the archive keeps them (the
    # counts below say how many snapshots each measurement saw).
    echo "$n,snapshots,$(median5 "$P" snapshots -f a.ptar)" >> times.csv
    echo "$n,list-latest,$(median5 "$P" -t -f a.ptar)" >> times.csv
    echo "$n,verify,$(median5 "$P" --verify -f a.ptar)" >> times.csv
    echo "$n,latest-snapshot,$(median5 "$P" snapshots --latest 1 -f a.ptar)" >> times.csv
    local t=()
    for k in 1 2 3 4 5; do
        echo "measure $n $k" >> "tree/f$(printf %03d $(( (n + k) % 200 )))".txt
        local a b; a=$(date +%s.%N); "$P" -r -f a.ptar tree; b=$(date +%s.%N)
        t+=("$(echo "$b - $a" | bc)")
    done
    echo "$n,append,$(printf '%s\n' "${t[@]}" | sort -n | sed -n 3p)" >> times.csv
}
i=1
count=1
while [ "$i" -le "$N" ]; do
    f=$(printf 'tree/f%03d.txt' $(( i % 200 )))
    echo "change $i" >> "$f"
    "$P" -r -f a.ptar tree
    count=$((count + 1))
    echo "$count,$(stat -c %s a.ptar)" >> sizes.csv
    case $count in 100|1000|10000) measure "$count"; count=$((count + 5));; esac
    i=$((i + 1))
done
python3 - sizes.csv times.csv <<'PY'
import csv, sys
sizes = [(int(r["snapshots"]), int(r["bytes"])) for r in csv.DictReader(open(sys.argv[1]))]
added = {}
for (n0, b0), (n1, b1) in zip(sizes, sizes[1:]):
    if n1 == n0 + 1:
        added[n1] = b1 - b0
def avg(lo, hi):
    v = [added[k] for k in range(lo, hi + 1) if k in added]
    return sum(v) / len(v) if v else float("nan")
print("| appends | bytes added per append (mean) |")
print("|---|---|")
for lo, hi in [(101, 200), (901, 1000), (9901, 10000)]:
    if any(k in added for k in range(lo, hi + 1)):
        print(f"| {lo}–{hi} | {avg(lo, hi):,.0f} |")
times = {}
for r in csv.DictReader(open(sys.argv[2])):
    times.setdefault(r["command"], {})[int(r["snapshots"])] = float(r["seconds"])
ns = sorted({n for c in times.values() for n in c})
print()
print("| command | " + " | ".join(f"at {n:,}" for n in ns) + " | last ÷ first |")
print("|---" * (len(ns) + 2) + "|")
for c, by in times.items():
    row = [f"{by[n]:.3f} s" if n in by else "–" for n in ns]
    ratio = by[ns[-1]] / by[ns[0]] if ns and ns[0] in by and ns[-1] in by else float("nan")
    print(f"| {c} | " + " | ".join(row) + f" | {ratio:.2f} |")
PY
