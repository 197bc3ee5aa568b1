#!/usr/bin/env bash
# Runs one fuzz target for a bounded time: fuzz/run.sh TARGET SECONDS [LIBFUZZER ARGS...]
#
# The corpus grows in fuzz/corpus/TARGET (kept between runs, not in git),
# seeded from tests/fixtures and a few generated inputs; a crash is saved
# in fuzz/artifacts/TARGET/ and makes this script fail. Stable Rust works:
# cargo-fuzz passes nightly-only flags, which RUSTC_BOOTSTRAP=1 allows;
# `-s none` turns the sanitizer off (the crate has no unsafe code).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET SECONDS [LIBFUZZER ARGS...]}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [LIBFUZZER ARGS...]}
shift 2

corpus=corpus/$target
seeds=corpus/seeds-$target
mkdir -p "$corpus" "$seeds"
cp ../tests/fixtures/*.json "$seeds"/
# Generated seeds: a Content-Type prefix (payload), two bodies (dedup_key),
# and the hostile shapes of tests/hostile.
printf '\001application/json; charset=utf-8\001{"id":"t1","status":"completed"}' >"$seeds/ct-prefix"
printf '{"id":"t1","status":"failed"}\000{"id":"t1","status":"completed"}' >"$seeds/two-bodies"
printf '{"id":"t1"}\000{"id":"t1","status":""}' >"$seeds/two-bodies-empty-status"
printf '{"id":"a\\u0000b"}' >"$seeds/nul-id"
printf '{"id":"\\ud800"}' >"$seeds/lone-surrogate"
printf '{"id":"t","x":"\\ud800"}' >"$seeds/lone-surrogate-elsewhere"
printf '{"id":"t","result":{"images":[{"url":"u","seed":1e400}]}}' >"$seeds/number-out-of-range"
printf '{"id":"\xc3\x28"}' >"$seeds/invalid-utf8"
{ printf '{"id":"deep","x":'; printf '[%.0s' $(seq 200); printf ']%.0s' $(seq 200); printf '}'; } >"$seeds/deep"

export RUSTC_BOOTSTRAP=1
exec cargo fuzz run -s none "$target" "$corpus" "$seeds" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$@"
