#!/usr/bin/env bash
# Runs every fuzz target of the protocol frontends for a bounded time each.
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh kafka:request
#
# cargo-fuzz needs a nightly toolchain (for the sanitizer flags); the script installs
# cargo-fuzz itself if it is missing. Corpora grow under crates/<crate>/fuzz/corpus/<target>
# (git-ignored); the recorded client sessions in crates/<crate>/tests/fixtures seed them.
# A crash leaves its input under crates/<crate>/fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal
fi

all_targets=(amqp:frames amqp:content_header amqp:table kafka:request kafka:record_batch)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=("${all_targets[@]}")
fi

for spec in "${targets[@]}"; do
    crate="${spec%%:*}"
    target="${spec#*:}"
    dir="crates/$crate/fuzz"
    corpus="$dir/corpus/$target"
    mkdir -p "$corpus"
    echo "== fuzz $crate/$target for ${seconds}s"
    (cd "$dir" && cargo "+$toolchain" fuzz run "$target" "corpus/$target" ../tests/fixtures \
        -- -max_total_time="$seconds" -rss_limit_mb=2048)
done
