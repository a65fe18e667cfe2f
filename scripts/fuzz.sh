#!/usr/bin/env bash
# Fuzzing (docs/testing.md, "Fuzzing"): builds every cargo-fuzz target in
# fuzz/ once, then runs each for a bounded time from its committed seed
# corpus (fuzz/corpus/<target>/). Fails when any target crashes, panics,
# times out on one input or goes past the memory bound; the input that did
# it is kept in fuzz/artifacts/<target>/ (reproduce with
# `cargo +nightly fuzz run -s none <target> <file>`).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target, default 30; TARGET  default: all of them.
# Environment: FUZZ_SANITIZER (default none: safe Rust, so the crashes that
# matter are panics, overflows, hangs and memory blow-ups; `address` adds
# ASan at about twice the build and run time), FUZZ_RSS_MB (default 1024).
#
# New inputs found on the way go to a scratch directory, not into the
# committed corpus: add one by hand when it is worth keeping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=${1:-30}
if [ $# -gt 0 ]; then shift; fi
sanitizer=${FUZZ_SANITIZER:-none}
rss_mb=${FUZZ_RSS_MB:-1024}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
fuzz() { cargo +nightly fuzz "$@"; }

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list)
fi

# Scratch space on tmpfs when there is one (wav_recover writes a store
# under $TMPDIR for every input).
base=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
work=$(mktemp -d "$base/vmail-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One build for all targets (they share the compiled library).
fuzz build -s "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    echo "== fuzz $t: ${secs}s"
    mkdir -p "$work/$t"
    if ! TMPDIR="$work" fuzz run -s "$sanitizer" "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb="$rss_mb" -timeout=10 \
        -print_final_stats=1 >"$work/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 60 "$work/$t.log"
    fi
    grep -aE '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$t.log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash"
