#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for SECONDS each (default 30) with cargo fuzz and libFuzzer, on the stable
# toolchain (`--sanitizer none`: the sanitizers need nightly; see README.md "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # e.g. scripts/fuzz.sh 300 segment_pattern
#
# Installs cargo-fuzz (pinned) when missing, builds the targets, then runs each one on the seeds in
# fuzz/corpus/<target> (read only) and a scratch corpus in fuzz/scratch/<target> (where new inputs and
# the run's log go; git ignores it). Exits non-zero if any target crashes, panics, times out or runs out
# of memory, after printing the reproducer and the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(cookie segment_pattern cloudfront_policy_xml evidently_json config commands dump rollout origin_response client_request)
# cargo fuzz build flags (use the same ones to replay, or cargo rebuilds). 16 codegen units build the
# instrumented crate graph faster on two cores, for a few percent of fuzzing speed.
BUILD_FLAGS=(--sanitizer none --codegen-units 16)
# Per input: at most 10 s (a slower input is a failure: patterns and parsers must be bounded) and 2 GiB.
LIBFUZZER_FLAGS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# CI works in a fresh clone each time: there, build outside it, so that the dependencies (most of the
# build) are compiled once per machine, not once per run. Locally: fuzz/target.
if [ -n "${CI:-}" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/edgesplit/fuzz-target"
fi

echo "== building the fuzz targets (${BUILD_FLAGS[*]})"
start=$(date +%s)
cargo fuzz build "${BUILD_FLAGS[@]}"
echo "built in $(($(date +%s) - start)) s"
# Run the binaries just built (not `cargo fuzz run`, which would rebuild if the sources moved meanwhile).
bin_dir="${CARGO_TARGET_DIR:-fuzz/target}/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=()
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds} s"
  mkdir -p "fuzz/scratch/$t" "fuzz/artifacts/$t"
  before=$(ls -1 "fuzz/artifacts/$t")
  log="fuzz/scratch/$t.log"
  if "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$seconds" "${LIBFUZZER_FLAGS[@]}" \
    "fuzz/scratch/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    status=0
  else
    status=$?
  fi
  new=$(comm -13 <(echo "$before" | sort) <(ls -1 "fuzz/artifacts/$t" | sort) | grep . || true)
  if [ "$status" -ne 0 ] || [ -n "$new" ]; then
    failed+=("$t")
    tail -n 60 "$log"
    echo "!! $t FAILED (exit $status; whole log: $log)"
    for f in $new; do
      echo "!! reproducer: fuzz/artifacts/$t/$f"
      echo "!! replay it:  cargo fuzz run ${BUILD_FLAGS[*]} $t fuzz/artifacts/$t/$f"
      echo "!!   (or, as built: $bin_dir/$t fuzz/artifacts/$t/$f)"
    done
  else
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzzing found problems in: ${failed[*]}"
  echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
  exit 1
fi
echo "== fuzzing: ${#targets[@]} targets, ${seconds} s each, no crash"
echo "fuzz: ${#targets[@]} passed, 0 failed"
