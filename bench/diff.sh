#!/usr/bin/env bash
# Kernel check of `ptar diff` (not run in CI).
#
#   bench/diff.sh CORPUS_DIR SCRATCH_DIR
#
# Archives CORPUS_DIR/kernel-v1 (ptar -c -C kernel-v1 .), appends
# CORPUS_DIR/kernel-v2 (ptar -r -C kernel-v2 .), times `ptar diff -f A 2 1`
# with /usr/bin/time -v (wall time, peak RSS), and checks the regular files it
# reports against CORPUS_DIR/kernel-v2.mutation.txt (`modified=M deleted=D
# renamed=R added=N ...`): content-modified files must be M, removed files
# D + R, added files N + R (renamed files moved into zz-ptar-renamed/, new
# ones into zz-ptar-added/), exactly. Exits non-zero naming the count that
# differs.
#
# The two trees are separate copies, so access and change times and inodes
# differ for every file: diff must ignore them, and no directory keeps its
# tree id (nothing is skipped).
#
# Environment: PTAR=path uses that binary instead of building one (cargo build
# --release -p ptar-cli). The archive goes to SCRATCH_DIR/diff-bench.ptar and
# is rebuilt on each run; outputs and the time report stay beside it.
set -euo pipefail

if [ $# -ne 2 ]; then sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2; fi
CORPUS=$(cd "$1" && pwd)
mkdir -p "$2"
SCRATCH=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
MUT="$CORPUS/kernel-v2.mutation.txt"
for p in "$CORPUS/kernel-v1" "$CORPUS/kernel-v2" "$MUT"; do
    [ -e "$p" ] || { echo "diff.sh: $p is missing" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "diff.sh: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }

if [ -z "${PTAR:-}" ]; then
    (cd "$HERE/.." && nice -n 10 cargo build --release --quiet -p ptar-cli)
    PTAR="$HERE/../target/release/ptar"
fi

count() { # the number after NAME= in the mutation line
    sed -n "s/.*[[:space:]]$1=\([0-9][0-9]*\).*/\1/p" "$MUT"
}
MODIFIED=$(count modified)
DELETED=$(count deleted)
RENAMED=$(count renamed)
ADDED=$(count added)
for v in MODIFIED DELETED RENAMED ADDED; do
    [ -n "${!v}" ] || { echo "diff.sh: no ${v,,}= in $MUT" >&2; exit 2; }
done

A="$SCRATCH/diff-bench.ptar"
rm -f "$A"
echo "diff.sh: archiving kernel-v1, then appending kernel-v2 into $A" >&2
nice -n 10 "$PTAR" -c -q -f "$A" -C "$CORPUS/kernel-v1" .
nice -n 10 "$PTAR" -r -q -f "$A" -C "$CORPUS/kernel-v2" .

# Timed: the text output, as a user runs it. Exit 1 means "differences".
set +e
/usr/bin/time -v -o "$SCRATCH/diff.time" "$PTAR" diff -f "$A" 2 1 \
    >"$SCRATCH/diff.txt" 2>"$SCRATCH/diff.stderr"
rc=$?
set -e
if [ $rc -ne 1 ]; then
    echo "diff.sh: ptar diff exited $rc (expected 1: differences)" >&2
    cat "$SCRATCH/diff.stderr" >&2
    exit 1
fi
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$SCRATCH/diff.time")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$SCRATCH/diff.time")

# Counted: the JSON output, which names each entry's type.
set +e
"$PTAR" diff --json -f "$A" 2 1 >"$SCRATCH/diff.jsonl"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "diff.sh: ptar diff --json exited $rc" >&2; exit 1; }

python3 - "$SCRATCH/diff.jsonl" "$SCRATCH/diff.txt" "$MODIFIED" "$DELETED" "$RENAMED" "$ADDED" \
    "$wall" "$rss" "$(cat "$SCRATCH/diff.stderr")" <<'EOF'
import json, sys
from collections import Counter
jsonl, txt, modified, deleted, renamed, added = sys.argv[1:3] + [int(x) for x in sys.argv[3:7]]
wall, rss, summary = sys.argv[7:10]
changes = [json.loads(l) for l in open(jsonl, encoding="utf-8")]
changes = [c for c in changes if c.get("message_type") == "change"]
text_lines = sum(1 for _ in open(txt, "rb"))
files = lambda kind: [c for c in changes if c["change"] == kind and c["type"] == "file"]
got = {
    "content-modified files": sum(1 for c in files("modified") if "content" in c.get("fields", [])),
    "removed files": len(files("removed")),
    "added files": len(files("added")),
}
want = {
    "content-modified files": modified,
    "removed files": deleted + renamed,
    "added files": added + renamed,
}
print(f"ptar diff: wall {wall}, max RSS {int(rss) / 1024:.1f} MiB")
print(f"  {summary.strip()}")
print(f"  {len(changes)} changes ({text_lines} text lines); "
      + ", ".join(f"{k} {v}" for k, v in got.items()))
counted = set(id(c) for c in files("added") + files("removed")
              + [c for c in files("modified") if "content" in c.get("fields", [])])
others = Counter(f"{c['change']} {c['type']}" for c in changes if id(c) not in counted)
print("  other changes: " + (", ".join(f"{n} {k}" for k, n in sorted(others.items())) or "none"))
bad = [k for k in want if got[k] != want[k]]
if text_lines != len(changes):
    print(f"diff.sh: the text output has {text_lines} lines, the JSON {len(changes)} changes", file=sys.stderr)
    bad.append("text lines")
for k in bad:
    if k in want:
        print(f"diff.sh: {k}: ptar diff says {got[k]}, the mutation log {want[k]}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
