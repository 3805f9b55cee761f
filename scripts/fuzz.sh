#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ for SECONDS_PER_TARGET seconds (default 60), one after
# the other; exit non-zero if any target finds a crash, a leak, an out-of-memory or a timeout.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Installs cargo-fuzz if missing. cargo fuzz needs nightly compiler flags (-Zsanitizer, …);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Targets are built with debug
# assertions and overflow checks, so arithmetic on hostile input fails loudly.
#
# The growing corpus is kept in fuzz/corpus/<target> (not committed); seeds in
# fuzz/seeds/<target>, earlier findings in fuzz/regressions/<target> and the golden events are
# read as extra corpora. A finding is saved under fuzz/artifacts/<target>/: fix it, copy it to
# fuzz/regressions/<target>/ and replay it in tests/it/fuzz_regressions.rs.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

cargo fuzz build --debug-assertions
targets=$(cargo fuzz list)

# Any single allocation above this is a finding: corrupt length prefixes must be bounded.
common=(-max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=20
        -print_final_stats=1)
failed=()
for target in $targets; do
    corpora=("corpus/$target")
    [ -d "seeds/$target" ] && corpora+=("seeds/$target")
    [ -d "regressions/$target" ] && corpora+=("regressions/$target")
    [ "$target" = decode_envelope ] && corpora+=("$root/events/tests/golden/v1")
    extra=()
    [ -f "dicts/$target.dict" ] && extra+=(-dict="dicts/$target.dict")
    # json_bodies starts a ledger (and its writer thread) per input; the thread ends after the
    # input does, so LeakSanitizer would run on every input and cut the speed tenfold.
    # Its inputs are structured (several requests with JSON bodies): let them be long at once
    # instead of growing the length limit from a few bytes.
    [ "$target" = json_bodies ] && extra+=(-detect_leaks=0 -len_control=0)
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "=== $target: ${seconds}s ===" >&2
    if cargo fuzz run --debug-assertions "$target" "${corpora[@]}" -- "${common[@]}" "${extra[@]}"; then
        echo "=== $target: no finding ===" >&2
    else
        echo "=== $target: FINDING, see fuzz/artifacts/$target/ ===" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: findings in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a finding" >&2
