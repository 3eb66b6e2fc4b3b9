#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time (not in CI).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 90 s per target, every target (config_parse, rewrite_chunks,
# request_head, shields_normalize). Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly
# toolchain (`rustup toolchain install nightly`); without nightly it falls
# back to RUSTC_BOOTSTRAP=1 on the stable toolchain. Set FUZZ_SANITIZER to
# address (slower, also checks the C code of aws-lc and SQLite) or none
# (the default: the targets are safe Rust). Corpora grow in
# fuzz/corpus/<target>/ (ignored by git), seeded from fuzz/seeds/<target>/.
# A crash leaves its input in fuzz/artifacts/<target>/ and the script exits
# 1: fix the cause, then keep the input in fuzz/regressions/<target>/, where
# tests/abuse.rs (tests/shields.rs for shields_normalize) checks it on every
# `cargo test`.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${1:-90}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config_parse rewrite_chunks request_head shields_normalize)
fi
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    echo "no nightly toolchain: using RUSTC_BOOTSTRAP=1 on stable" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

"${fuzz[@]}" build -s "$sanitizer"

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${seconds} s"
    # -max_total_time bounds the run; -timeout flags an input that takes
    # more than 10 s; -rss_limit_mb catches unbounded memory.
    if ! "${fuzz[@]}" run -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | tail -n 25; then
        status=1
    fi
    if ls "artifacts/$t"/* >/dev/null 2>&1; then
        echo "== $t: crashing inputs in fuzz/artifacts/$t/:" >&2
        ls -l "artifacts/$t" >&2
        status=1
    fi
done
exit "$status"
