#!/usr/bin/env bash
# A guard against slipping back: runs the main benchmarks briefly (the save
# path against raw rdkafka, the guest load against a native one), prints
# their ratios, and fails when one is more than 2x worse than the figure
# recorded in BENCHMARKS.md ("The smoke guard"). Ratios, not times: both
# sides of each ratio run in the same process, so a slower machine moves
# them little, while a short run on a noisy one can still move them some.
#
#   bash scripts/bench-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wf-target}"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
brief=(--warm-up-time 0.5 --measurement-time 2 --noplot)

run() { # part, bench, filter, lines to show
  local log
  log=$(mktemp)
  if ! (cd tests && WF_BENCH=$1 cargo bench -q -p wf-tests --bench "$2" -- "${brief[@]}" "$3") >"$log" 2>&1; then
    tail -40 "$log"
    echo "bench-smoke: the $2 benchmark failed" >&2
    exit 1
  fi
  grep -E "$4" "$log" || true
  cat "$log" >>"$out"
  rm -f "$log"
}

measure() {
  run save kafka "kafka_save/(store|raw)" "^  save"
  run load runtime "guest load" "^guest load(_view)? of"
}

# Compares the best of the runs so far (the `smoke-ratio` lines in $out)
# with the recorded figures: the rows of BENCHMARKS.md's smoke table,
# "| `key` | what | higher/lower | figure |".
check() {
  python3 - "$out" BENCHMARKS.md <<'PY'
import re, sys

recorded = {}
for line in open(sys.argv[2]):
    m = re.match(r"\|\s*`([a-z0-9-]+)`\s*\|[^|]*\|\s*(higher|lower)\s*\|\s*([0-9.]+)", line)
    if m:
        recorded[m.group(1)] = (m.group(2), float(m.group(3)))
if not recorded:
    sys.exit("bench-smoke: no recorded ratios found in BENCHMARKS.md's smoke table")

measured = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[0] == "smoke-ratio" and parts[1] in recorded:
        value = float(parts[2])
        best = max if recorded[parts[1]][0] == "higher" else min
        measured[parts[1]] = best(value, measured.get(parts[1], value))

failed = []
print(f"\n{'ratio':<26} {'recorded':>9} {'now':>9}  verdict (fails beyond 2x worse)")
for key, (better, figure) in sorted(recorded.items()):
    now = measured.get(key)
    if now is None:
        failed.append(f"{key}: not measured (did a benchmark stop printing it?)")
        print(f"{key:<26} {figure:>9.2f} {'-':>9}  missing")
        continue
    worse = figure / now if better == "higher" else now / figure
    verdict = "ok" if worse <= 2 else f"{worse:.1f}x worse"
    if worse > 2:
        failed.append(f"{key}: {now:.2f} against {figure:.2f} recorded ({better} is better)")
    print(f"{key:<26} {figure:>9.2f} {now:>9.2f}  {verdict}")
if failed:
    sys.exit("bench-smoke: regressed:\n  " + "\n  ".join(failed))
print("bench-smoke: every ratio within 2x of BENCHMARKS.md")
PY
}

# Up to three runs, the best of each ratio counting: why, in BENCHMARKS.md's
# smoke guard section.
measure
for attempt in 2 3; do
  check && exit 0
  echo "bench-smoke: measuring again before failing (run $attempt of 3)" >&2
  measure
done
check
