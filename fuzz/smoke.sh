#!/usr/bin/env bash
# Builds every fuzz target, generates the seed corpora from testdata/, then
# runs each target for FUZZ_SECONDS seconds (default 30), one at a time on
# one worker. Exits non-zero if a target fails to build or finds a crash,
# a timeout or an out-of-memory input (artifacts land in fuzz/artifacts/).
#
#   FUZZ_SECONDS=30         seconds per target
#   FUZZ_SANITIZER=address  cargo fuzz -s value (address, none, ...)
#   FUZZ_TARGETS="a b"      run only these targets (default: all)
#   FUZZ_CPU=1              pin the fuzzer to this CPU with taskset
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the nightly flags it needs.
set -euo pipefail

cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-30}"
san="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"

pin=()
if [[ -n "${FUZZ_CPU:-}" ]] && command -v taskset >/dev/null; then
    pin=(taskset -c "$FUZZ_CPU")
fi

echo "== generating seeds"
cargo run --quiet --example gen_seeds

echo "== building (sanitizer: $san)"
cargo fuzz build -s "$san"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
mkdir -p logs
failed=()
for t in $targets; do
    echo "== $t: ${secs}s"
    mkdir -p "corpus/$t"
    rm -f fuzz-0.log
    rc=0
    "${pin[@]}" cargo fuzz run -s "$san" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -jobs=1 -workers=1 -timeout=60 \
        -rss_limit_mb=2048 -print_final_stats=1 >"logs/$t.out" 2>&1 || rc=$?
    # With -jobs, libFuzzer writes the run's output to fuzz-0.log.
    if [[ -f fuzz-0.log ]]; then
        mv fuzz-0.log "logs/$t.log"
    else
        cp "logs/$t.out" "logs/$t.log"
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "logs/$t.log" || true
    grep -Eo 'cov: [0-9]+ ft: [0-9]+' "logs/$t.log" | tail -n 1 || true
    if [[ $rc -ne 0 ]] || grep -qE '^SUMMARY: |ERROR: libFuzzer' "logs/$t.log"; then
        echo "!! $t FAILED (exit $rc); see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        grep -E 'panicked at|^SUMMARY' -A2 "logs/$t.log" | head -n 20 || true
        failed+=("$t")
    fi
done

if [[ ${#failed[@]} -ne 0 ]]; then
    echo "== failed: ${failed[*]}"
    exit 1
fi
echo "== all targets ran ${secs}s without a finding"
