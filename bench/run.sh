#!/usr/bin/env bash
# Benchmark ptar against the peer tools on the shared corpus, in one run.
#
#   bench/run.sh CORPUS_DIR SCRATCH_DIR [OUT_CSV]
#
# 1. builds the corpus with SHARED/make-corpus.sh CORPUS_DIR unless the requested
#    datasets are already there (it is idempotent; waits while another build runs)
# 2. builds ptar (cargo build --release -p ptar-cli) unless PTAR=path is given, and runs a copy
#    of the binary kept in SCRATCH_DIR (a rebuild during the run changes nothing)
# 3. times ptar on the scenarios of SHARED/peers.sh (backup-v1, backup-v2,
#    backup-v2-reread, restore-v1, list-v2, check), same CSV schema
# 4. optionally (MEMORY=1) peak RSS of ptar -c / -x on ~1 GB and ~10 GB of
#    generated input (bench/gen-input.py, kept in SCRATCH_DIR for the next run)
# 5. runs SHARED/peers.sh into the same CSV
# 6. prints bench/report.py's Markdown (also saved as OUT_CSV with .md)
#
# SHARED is the shared bench dir (default: ../shared/bench beside the repository).
# OUT_CSV defaults to SCRATCH_DIR/results/bench-YYYYmmdd-HHMMSS.csv; an existing OUT_CSV
# is appended to (report.py keeps the last line of each tool/dataset/scenario).
# Environment:
#   DATASETS="kernel"        any of: kernel mixed image (empty: none, e.g. for MEMORY=1)
#   TOOLS="tarzstd tarlz4 restic borg"   peers for peers.sh (also rustic casync zpaq;
#                            missing ones are skipped); TOOLS= (empty) runs no peers
#   PTAR=path                use this binary, do not build
#   PTAR_TOOLS=1             run ptar at all (0: peers only)
#   ENCRYPT=1                also tool "ptar-enc": -c --encrypt, PTAR_PASSPHRASE set
#   PTAR_VARIANTS="--fast --best"   extra tools "ptar-fast", "ptar-best" (--flag or
#                            --flag=value): given to -c and -r; skipped unless
#                            `ptar --help` shows the flag
#   REREAD=1  VERIFY=1       as in peers.sh (backup-v2-reread needs ptar --force-read)
#   MEMORY=1                 the memory scenario (needs ~35 GB free for the 10 GB case,
#                            which is skipped when there is not enough disk)
#   MEM_SIZES="1 10"         its input sizes in GB (1e9 bytes; fractions allowed)
#   MEM_TOOLS="ptar"         which ptar tools run it (e.g. "ptar ptar-enc")
#   SETTLE_S=400             wait this long after a bulk delete before measuring
#
# ext4 without a journal (see SHARED/RESULTS.md): file creation is slow for minutes
# after an rm -rf of a big tree. So nothing is deleted while measuring. Leftovers of
# an earlier run are deleted first, then the run waits SETTLE_S. The ptar part moves
# its trees to SCRATCH/.trash-ptar (peers.sh never looks there, so it finds nothing
# to delete and starts at once), peers.sh moves its own to SCRATCH/.trash and deletes
# them when it ends; .trash-ptar is deleted last, after every measurement.
set -uo pipefail

if [ $# -lt 2 ]; then sed -n '2,/^set -uo/p' "$0" | sed '$d' >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$HERE/../../shared/bench}
[ -x "$SHARED/peers.sh" ] || { echo "no peers.sh in $SHARED (set SHARED=)" >&2; exit 2; }
SHARED=$(cd "$SHARED" && pwd)
mkdir -p "$1" "$2"
C=$(cd "$1" && pwd)
S=$(cd "$2" && pwd)
OUT=${3:-$S/results/bench-$(date +%Y%m%d-%H%M%S).csv}
mkdir -p "$(dirname "$OUT")"; OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
META="$OUT.meta"
REPORT="${OUT%.csv}.md"

DATASETS=${DATASETS-kernel}   # empty: no corpus runs (e.g. MEMORY=1 alone)
TOOLS=${TOOLS-"tarzstd tarlz4 restic borg"}
PTAR_TOOLS=${PTAR_TOOLS:-1}
ENCRYPT=${ENCRYPT:-0}
PTAR_VARIANTS=${PTAR_VARIANTS:-}
REREAD=${REREAD:-1}
VERIFY=${VERIFY:-1}
MEMORY=${MEMORY:-0}
MEM_SIZES=${MEM_SIZES:-"1 10"}
SETTLE_S=${SETTLE_S:-400}
PY=/usr/bin/python3
PW=ptar-bench-passphrase
export LC_ALL=C
LOGS="$S/logs"; mkdir -p "$LOGS"
TRASH="$S/.trash-ptar"; PEER_TRASH="$S/.trash"
mkdir -p "$TRASH"

say() { echo "[bench] $*" >&2; }
meta() { echo "$*" >>"$META"; }
bytes() { if [ -e "$1" ]; then du -sb --apparent-size "$1" | cut -f1; else echo 0; fi; }

# ---------------------------------------------------------------- trash and settle
trash() { # move a tree out of the way; it is deleted after the last measurement
  local p
  for p in "$@"; do
    [ -e "$p" ] && mv "$p" "$TRASH/$(date +%s%N)-$(basename "$p")"
  done
  return 0
}
drop() { # a single big file (image dataset, archives) can go at once; trees are trashed
  case $DS in image) rm -rf "$@" ;; *) trash "$@" ;; esac
}
bulk_delete() { # delete both trash dirs, remember when (peers.sh reads the same stamp)
  local d deleted=0
  for d in "$TRASH" "$PEER_TRASH"; do
    if [ -n "$(ls -A "$d" 2>/dev/null)" ]; then rm -rf "$d"; deleted=1; fi
  done
  mkdir -p "$TRASH"
  if [ $deleted = 1 ]; then sync; date +%s >"$S/.last-bulk-delete"; fi
}
settle() { # wait until SETTLE_S seconds have passed since the last bulk delete
  local last now
  [ -e "$S/.last-bulk-delete" ] || return 0
  last=$(cat "$S/.last-bulk-delete"); now=$(date +%s)
  if [ $((now - last)) -lt "$SETTLE_S" ]; then
    say "settling: waiting $((SETTLE_S - (now - last))) s after the last bulk delete (ext4 without a journal)"
    sleep $((SETTLE_S - (now - last)))
  fi
}

avail_bytes() { df -B1 --output=avail "$S" | tail -n1; }
ensure_room() { # BYTES WHAT: if the disk has less room, empty the trash now and settle
  local need=$1 what=$2
  [ "$(avail_bytes)" -ge "$need" ] && return 0
  say "only $(($(avail_bytes) / 1000000000)) GB free, $what needs $((need / 1000000000)) GB: deleting the trash now, then settling"
  bulk_delete; settle
  if [ "$(avail_bytes)" -lt "$need" ]; then
    say "WARNING: still only $(($(avail_bytes) / 1000000000)) GB free for $what"
    meta "warning: low disk before $what ($(avail_bytes) bytes free, $need wanted)"
  fi
}

# ---------------------------------------------------------------- 1. corpus
corpus_ready() {
  local ds
  for ds in $DATASETS; do
    [ -e "$C/.stamp-$ds-v1" ] && [ -e "$C/.stamp-$ds-v2" ] || return 1
  done
}
if ! corpus_ready; then
  while pgrep -f 'make-corpus\.sh' >/dev/null; do say "a corpus build is running; waiting"; sleep 30; done
  if ! corpus_ready; then
    say "building the corpus in $C (log: $LOGS/make-corpus.log)"
    if ! flock "$C/.bench-corpus.lock" "$SHARED/make-corpus.sh" "$C" >"$LOGS/make-corpus.log" 2>&1; then
      say "make-corpus.sh failed, see $LOGS/make-corpus.log"; exit 1
    fi
  fi
fi

# ---------------------------------------------------------------- 2. ptar binary
BIN="$S/.ptar-bin/ptar"
if [ "$PTAR_TOOLS" = 1 ]; then
  if [ -n "${PTAR:-}" ]; then
    SRC_BIN=$(command -v "$PTAR") || { say "PTAR=$PTAR: not found"; exit 1; }
  else
    # only the binary's package: a half-edited test crate must not stop a benchmark
    say "cargo build --release -p ptar-cli (log: $LOGS/cargo-build.log)"
    if ! (cd "$ROOT" && cargo build --release -p ptar-cli --bin ptar) >"$LOGS/cargo-build.log" 2>&1; then
      tail -n 20 "$LOGS/cargo-build.log" >&2; say "cargo build failed (or give PTAR=path)"; exit 1
    fi
    SRC_BIN="$ROOT/target/release/ptar"
  fi
  mkdir -p "$(dirname "$BIN")"; cp -f "$SRC_BIN" "$BIN.new" && mv -f "$BIN.new" "$BIN"
  HELP=$("$BIN" --help 2>&1)
fi
has_flag() { grep -qE -- "(^|[[:space:],])$1([[:space:],=]|\$)" <<<"$HELP"; }

# ---------------------------------------------------------------- run metadata
[ -s "$OUT" ] || : >"$META"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: nproc $(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "scratch fs: $(findmnt -n -o FSTYPE,OPTIONS -T "$S" 2>/dev/null)"
  echo "datasets: $DATASETS"
  echo "peers: $TOOLS"
  if [ "$PTAR_TOOLS" = 1 ]; then
    dirty=$(git -C "$ROOT" --no-optional-locks status --porcelain -- ptar ptar-cli Cargo.toml Cargo.lock 2>/dev/null)
    echo "ptar: $("$BIN" --version 2>&1) from $SRC_BIN, git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)${dirty:+ + uncommitted changes}"
  fi
  for t in tar zstd lz4 restic borg rustic casync zpaq; do
    command -v "$t" >/dev/null || continue
    case $t in
      restic) v=$(restic version 2>&1) ;;
      zstd | lz4) v=$("$t" -V 2>&1) ;;
      zpaq) v=$(zpaq 2>&1) ;;
      *) v=$("$t" --version 2>&1) ;;
    esac
    echo "version $t: $(head -n1 <<<"$v" | sed 's/^\*\** *//; s/ *\*\**$//; s/, by .*//')"
  done
} >>"$META"

# leftovers of an earlier run: delete them now, then settle (peers.sh then finds nothing)
for old in "$S"/live "$S"/restore "$S"/repo-* "$S"/cache-*; do [ -e "$old" ] && trash "$old"; done
bulk_delete
[ -s "$OUT" ] || echo "tool,dataset,scenario,wall_s,user_s,sys_s,cpu_pct,max_rss_mib,input_bytes,mb_per_s,repo_bytes,cache_bytes,exit,note" >"$OUT"

# ---------------------------------------------------------------- ptar steps
# run from $S with the source at ./live; archive $REPO/a.ptar. CFLAGS / RFLAGS: the
# tool's extra flags for -c / -r (word-split on purpose); SNAP1 / SNAP2: the v1 and v2
# snapshots (ids; `--snapshot N` counts from the end, 1 = latest).
# shellcheck disable=SC2086
{
ptar_b1()      { "$BIN" -c $CFLAGS -f "$REPO/a.ptar" live; }
ptar_b2()      { "$BIN" -r $RFLAGS -f "$REPO/a.ptar" live; }
ptar_reread()  { "$BIN" -r --force-read $RFLAGS -f "$REPO/a.ptar" live; }
ptar_restore() { "$BIN" -x -f "$REPO/a.ptar" --snapshot "$SNAP1" -C "$R"; }
ptar_list()    { "$BIN" -t -f "$REPO/a.ptar" --snapshot "$SNAP2" >/dev/null; }
ptar_check()   { "$BIN" --verify --full -f "$REPO/a.ptar"; }
ptar_mem_c()   { "$BIN" -c $CFLAGS -f "$REPO/m.ptar" "$MEMIN"; }
ptar_mem_x()   { "$BIN" -x -f "$REPO/m.ptar" -C "$R"; }
}
export -f ptar_b1 ptar_b2 ptar_reread ptar_restore ptar_list ptar_check ptar_mem_c ptar_mem_x
export BIN

# run_step TOOL DATASET SCENARIO INPUT_BYTES FUNC [NOTE]: one CSV line, as peers.sh
run_step() {
  local tool=$1 ds=$2 sc=$3 inb=$4 fn=$5 note=${6:-}
  local tf="$S/.time-ptar" lg="$LOGS/$tool-$ds-$sc.log"
  local wall usr sys cpu rss rc rb cb mbs line
  (cd "$S" && /usr/bin/time -f "%e %U %S %P %M" -o "$tf" bash -c "$fn" >"$lg" 2>&1)
  rc=$?
  read -r wall usr sys cpu rss < <(tail -n1 "$tf")   # a failing command adds a line above
  cpu=${cpu%\%}
  rb=$(bytes "$REPO"); cb=$(bytes "$CACHE")
  mbs=$(awk -v b="$inb" -v w="$wall" 'BEGIN{ if (b>0 && w>0) printf "%.1f", b/1e6/w }')
  [ "$rc" -ne 0 ] && note="FAILED(see log) $note"
  line=$(printf '%s,%s,%s,%s,%s,%s,%s,%.1f,%s,%s,%s,%s,%s,%s' "$tool" "$ds" "$sc" "$wall" "$usr" "$sys" "$cpu" \
         "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$inb" "$mbs" "$rb" "$cb" "$rc" "$note")
  echo "$line" >>"$OUT"; echo "$line"
  return "$rc"
}
add_note() { # append a note to the last CSV line (its note field)
  sed -i '$ s/,\([^,]*\)$/,\1 '"$1"'/' "$OUT"; say "   -> $1"
}

# compare a restored tree with the original: content (diff -r, symlinks as links),
# then path, size, mode and whole-second mtime of every regular file
check_tree() { # GOT WANT LOG -> prints restore-ok | restore-ok-content-META-DIFF | restore-DIFF
  local got=$1 want=$2 log=$3
  [ -d "$got" ] || { echo "no $got" >"$log"; echo "restore-DIFF"; return; }
  if ! diff -r --no-dereference -q "$got" "$want" >"$log" 2>&1; then echo "restore-DIFF"; return; fi
  local fp='%P %s %m %T@\n'
  if cmp -s <(cd "$got" && find . -type f -printf "$fp" | sed 's/\.[0-9]*$//' | sort) \
            <(cd "$want" && find . -type f -printf "$fp" | sed 's/\.[0-9]*$//' | sort); then
    echo "restore-ok"
  else
    diff <(cd "$got" && find . -type f -printf "$fp" | sed 's/\.[0-9]*$//' | sort) \
         <(cd "$want" && find . -type f -printf "$fp" | sed 's/\.[0-9]*$//' | sort) | head -n 50 >>"$log"
    echo "restore-ok-content-META-DIFF"
  fi
}

snap_ids() { # ids of the snapshots in $REPO/a.ptar, oldest first, one a line
  "$BIN" snapshots --json -f "$REPO/a.ptar" </dev/null 2>/dev/null |
    $PY -c 'import json,sys; [print(json.loads(l)["id"]) for l in sys.stdin if l.strip()]'
}

# the ptar tools of this run, "NAME|CREATE FLAGS|APPEND FLAGS|ENCRYPTED"
PTAR_LIST=()
HAS_REREAD=0
if [ "$PTAR_TOOLS" = 1 ]; then
  PTAR_LIST+=("ptar|||0")
  [ "$ENCRYPT" = 1 ] && PTAR_LIST+=("ptar-enc|--encrypt||1")
  for v in $PTAR_VARIANTS; do
    name="ptar-$(printf '%s' "${v#--}" | tr -c 'A-Za-z0-9' '-')"
    if has_flag "${v%%=*}"; then PTAR_LIST+=("$name|$v|$v|0")
    else say "skip $name: ptar --help shows no ${v%%=*}"; meta "skipped: $name (ptar has no ${v%%=*})"; fi
  done
  if has_flag --force-read; then HAS_REREAD=1
  elif [ "$REREAD" = 1 ]; then
    say "ptar has no --force-read: backup-v2-reread skipped"; meta "skipped: ptar backup-v2-reread (ptar has no --force-read)"
  fi
fi
MEM_TOOLS=${MEM_TOOLS:-ptar}

use_tool() { # NAME|CFLAGS|RFLAGS|ENC -> TOOL, CFLAGS, RFLAGS, PTAR_PASSPHRASE
  local enc
  IFS='|' read -r TOOL CFLAGS RFLAGS enc <<<"$1"
  export CFLAGS RFLAGS
  if [ "$enc" = 1 ]; then export PTAR_PASSPHRASE=$PW; else unset PTAR_PASSPHRASE; fi
}

# ---------------------------------------------------------------- 3. ptar on the corpus
declare -A CHECKED_V2
run_ptar_dataset() { # uses TOOL DS V1 V2 IN1 IN2 MUT
  local nb=0 note ids
  export REPO="$S/repo-$TOOL" CACHE="$S/cache-$TOOL" R="$S/restore"
  drop "$S/live" "$REPO" "$CACHE" "$R"; mkdir -p "$REPO"
  ensure_room $((IN1 * 3 + 2000000000)) "$TOOL on $DS"   # live, restore, archive
  if ! cp -a "$V1" "$S/live" 2>"$LOGS/$TOOL-$DS-copy.log"; then
    say "copying $DS-v1 failed (disk full?), $TOOL on $DS skipped: $(tail -n1 "$LOGS/$TOOL-$DS-copy.log")"
    meta "skipped: $TOOL $DS (copying $DS-v1 to live failed, see $LOGS/$TOOL-$DS-copy.log)"
    drop "$S/live" "$REPO"; return
  fi
  sync
  run_step "$TOOL" "$DS" backup-v1 "$IN1" ptar_b1 && nb=1
  # shellcheck disable=SC2086
  (cd "$S" && $PY "$SHARED/mutate.py" $MUT >"$LOGS/$TOOL-$DS-mutate.log")
  sync
  run_step "$TOOL" "$DS" backup-v2 "$IN2" ptar_b2 && nb=$((nb + 1))
  if [ "$REREAD" = 1 ] && [ "$HAS_REREAD" = 1 ]; then
    run_step "$TOOL" "$DS" backup-v2-reread "$IN2" ptar_reread && nb=$((nb + 1))
  fi
  # Only after the v2 backups: reading every file updates access times
  # (relatime), which ptar records, and v2 would then store every directory
  # anew, a cost no user's tree pays.
  if [ "$VERIFY" = 1 ] && [ -z "${CHECKED_V2[$DS]:-}" ]; then  # once per dataset
    if diff -r --no-dereference -q "$S/live" "$V2" >"$LOGS/$DS-v2-determinism-ptar.log" 2>&1; then
      say "   mutated live/ is identical to $DS-v2"
    else
      say "   WARNING: mutated live/ differs from $DS-v2 (see $LOGS/$DS-v2-determinism-ptar.log)"
    fi
    CHECKED_V2[$DS]=1
  fi
  # v1 = the oldest snapshot, v2 = the second (not timed). Without ids, count from
  # the end as --snapshot does (1 = latest).
  ids=$(snap_ids)
  SNAP1=$(sed -n 1p <<<"$ids"); SNAP2=$(sed -n 2p <<<"$ids")
  [ -n "$SNAP1" ] || SNAP1=$nb
  [ -n "$SNAP2" ] || SNAP2=$((nb > 1 ? nb - 1 : 1))
  export SNAP1 SNAP2
  drop "$R"; mkdir -p "$R"
  run_step "$TOOL" "$DS" restore-v1 "$IN1" ptar_restore
  if [ "$VERIFY" = 1 ]; then
    note=$(check_tree "$R/live" "$V1" "$LOGS/$TOOL-$DS-verify.log")
    add_note "$note"
  fi
  drop "$R"
  run_step "$TOOL" "$DS" list-v2 0 ptar_list
  run_step "$TOOL" "$DS" check "$(bytes "$REPO")" ptar_check
  drop "$S/live" "$R" "$REPO" "$CACHE"   # leave nothing for peers.sh to sweep and delete
}

# ---------------------------------------------------------------- 4. memory scenario
run_memory() { # uses TOOL: ptar -c and -x of generated inputs, peak RSS
  local gb in need avail note files stamp
  for gb in $MEM_SIZES; do
    DS=mem-${gb}g
    export MEMIN="meminput-${gb}g" REPO="$S/repo-$TOOL-mem" CACHE="$S/cache-$TOOL-mem" R="$S/restore"
    stamp="$S/$MEMIN.complete"
    in=$(awk -v g="$gb" 'BEGIN{printf "%.0f", g * 1e9}')   # not %d: mawk clamps it to 2^31-1
    # an input made for another size (or by an older generator) is made again
    if [ -e "$stamp" ] && ! grep -q " bytes=$in " "$stamp"; then trash "$S/$MEMIN" "$stamp"; fi
    avail=$(avail_bytes)
    need=$((in * 23 / 10 + 2000000000))                 # archive + extraction + 2 GB
    [ -e "$stamp" ] || need=$((need + in))              # the input itself
    [ -n "$TOOLS" ] && [ -n "$DATASETS" ] && need=$((need + 15000000000))   # for the peers
    if [ "$avail" -lt "$need" ]; then
      say "skip $DS: $((avail / 1000000000)) GB free, need $((need / 1000000000)) GB"
      meta "skipped: $TOOL $DS (not enough disk: $avail bytes free, $need needed)"; continue
    fi
    if [ ! -e "$stamp" ]; then
      say "generating $S/$MEMIN ($gb GB; kept for the next run)"
      trash "$S/$MEMIN"
      if ! $PY "$HERE/gen-input.py" "$S/$MEMIN" "$in" >"$LOGS/gen-$MEMIN.log" 2>&1; then
        say "gen-input.py failed, see $LOGS/gen-$MEMIN.log"; continue
      fi
      cp "$LOGS/gen-$MEMIN.log" "$stamp"; sync
    fi
    in=$(bytes "$S/$MEMIN")
    files=$(sed -n 's/.*\(files=[0-9]*\).*/\1/p' "$stamp")
    rm -rf "$REPO" "$CACHE"; mkdir -p "$REPO"            # single files: delete at once
    trash "$R"
    run_step "$TOOL" "$DS" backup-v1 "$in" ptar_mem_c "$files"
    mkdir -p "$R"
    run_step "$TOOL" "$DS" restore-v1 "$in" ptar_mem_x "$files"
    if [ "$VERIFY" = 1 ]; then
      note=$(check_tree "$R/$MEMIN" "$S/$MEMIN" "$LOGS/$TOOL-$DS-verify.log")
      add_note "$note"
    fi
    trash "$R"; rm -rf "$REPO" "$CACHE"
  done
}

if [ ${#PTAR_LIST[@]} -gt 0 ]; then
  settle
  for DS in $DATASETS; do
    V1="$C/$DS-v1"; V2="$C/$DS-v2"
    if [ ! -d "$V1" ] || [ ! -d "$V2" ]; then say "no dataset $DS in $C"; continue; fi
    IN1=$(bytes "$V1"); IN2=$(bytes "$V2")
    case $DS in image) MUT="image live/disk.img" ;; *) MUT="tree live" ;; esac
    for t in "${PTAR_LIST[@]}"; do
      use_tool "$t"; say "$TOOL on $DS"
      run_ptar_dataset
    done
  done
  if [ "$MEMORY" = 1 ]; then
    for t in "${PTAR_LIST[@]}"; do
      use_tool "$t"
      case " $MEM_TOOLS " in *" $TOOL "*) ;; *) continue ;; esac
      say "$TOOL: memory scenario ($MEM_SIZES GB)"
      run_memory
    done
  fi
  unset PTAR_PASSPHRASE
fi

# ------------------------------------------- 4b. tar + zstd -19, beside ptar --best
# peers.sh has no high-level zstd; the issue weighs --best against tar+zstd -19.
# Create only (size and wall), with the same live copy and timing as above.
tarzstd19_b1() { tar -cf - live | zstd -19 -T2 -q -o "$REPO/v1.tar.zst"; }
export -f tarzstd19_b1
case " $PTAR_VARIANTS " in *" --best "*)
  if [ "$PTAR_TOOLS" != 0 ] && [ -n "$DATASETS" ]; then
    for DS in $DATASETS; do
      V1="$C/$DS-v1"; [ -d "$V1" ] || continue
      IN1=$(bytes "$V1")
      export REPO="$S/repo-tarzstd19" CACHE="$S/cache-tarzstd19"
      drop "$S/live" "$REPO" "$CACHE"; mkdir -p "$REPO"
      ensure_room $((IN1 * 2 + 2000000000)) "tar+zstd -19 on $DS"
      say "tar + zstd -19 on $DS"
      if cp -a "$V1" "$S/live"; then
        sync
        run_step tarzstd19 "$DS" backup-v1 "$IN1" tarzstd19_b1
      fi
      trash "$S/live"; drop "$REPO" "$CACHE"
    done
  fi ;;
esac

# ---------------------------------------------------------------- 5. peers
if [ -n "$TOOLS" ] && [ -n "$DATASETS" ]; then
  # peers.sh keeps every tree until it ends: per tool and dataset a live copy, a
  # restore and the repository, about 2.5x the dataset
  need=2000000000
  for DS in $DATASETS; do
    [ -d "$C/$DS-v1" ] || continue
    n=$(bytes "$C/$DS-v1")
    for t in $TOOLS; do need=$((need + n * 5 / 2)); done
  done
  ensure_room "$need" "peers.sh"
  say "peers.sh: $TOOLS on $DATASETS"
  DATASETS=$DATASETS TOOLS=$TOOLS REREAD=$REREAD VERIFY=$VERIFY SETTLE_S=$SETTLE_S \
    bash "$SHARED/peers.sh" "$C" "$S" "$OUT" || say "peers.sh exited with $?"
fi

# ---------------------------------------------------------------- 6. clean up, report
say "deleting the trash (recorded for the next run's settle)"
bulk_delete
$PY "$HERE/report.py" "$OUT" | tee "$REPORT"
say "CSV: $OUT  report: $REPORT  logs: $LOGS"
