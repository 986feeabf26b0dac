#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each and fails if
# any of them crashes, hangs or runs out of memory.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#
# Environment:
#   FUZZ_JOBS=N          targets run N at a time (default 1; one core each)
#   FUZZ_SANITIZER=S     none (default) or address; the crate forbids unsafe
#                        code, so none is the default: twice the executions
#   FUZZ_MERGE=1         afterwards, merge what the run found into the committed
#                        corpus fuzz/corpus/<target>, keeping only inputs that
#                        reach code (edges) that the corpus does not: a small,
#                        minimized corpus
#   FUZZ_LOG_DIR=DIR     where each target's log goes (default fuzz/target/logs)
#
# The fuzzer is cargo-fuzz (libFuzzer), installed from crates.io if missing.
# It runs on the stable toolchain: with the sanitizer off every flag it
# passes is stable; with FUZZ_SANITIZER=address the nightly-only -Zsanitizer
# needs RUSTC_BOOTSTRAP=1, which this script then sets.
#
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>
# and turn it into a test in tests/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
case $seconds in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-none}
log_dir=${FUZZ_LOG_DIR:-fuzz/target/logs}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build -s "$sanitizer"

mkdir -p "$log_dir"
run_one() {
  local target=$1 work="fuzz/target/corpus/$1" started ended status=0
  mkdir -p "$work" "fuzz/corpus/$target" "fuzz/artifacts/$target"
  started=$(date +%s)
  # New inputs go to the work corpus; the committed one is read as seeds.
  cargo fuzz run -s "$sanitizer" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log_dir/$target.log" 2>&1 || status=$?
  ended=$(date +%s)
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_dir/$target.log" | tail -1)
  echo "$target ran=$((ended - started))s execs=${execs:-?} exit=$status" >>"$log_dir/summary"
  return $status
}

: >"$log_dir/summary"
failed=()
declare -A running=()
for target in "${targets[@]}"; do
  while [ "${#running[@]}" -ge "$jobs" ]; do
    wait -n -p done_pid || true
    unset "running[$done_pid]"
  done
  echo "== fuzzing $target for ${seconds}s"
  run_one "$target" &
  running[$!]=$target
done
wait || true

echo "== summary"
cat "$log_dir/summary"
while read -r target _ _ result; do
  if [ "$result" != exit=0 ]; then
    failed+=("$target")
  fi
done <"$log_dir/summary"

if [ "${FUZZ_MERGE:-0}" = 1 ]; then
  for target in "${targets[@]}"; do
    cargo fuzz run -s "$sanitizer" "$target" "fuzz/corpus/$target" "fuzz/target/corpus/$target" -- -merge=1 -use_counters=0 \
      >>"$log_dir/$target.merge.log" 2>&1
  done
  du -sh fuzz/corpus
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (see $log_dir/<target>.log and fuzz/artifacts/)" >&2
  exit 1
fi
echo "no crash in ${#targets[@]} targets"
