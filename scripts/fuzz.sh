#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time, starting from the
# committed seeds (fuzz/corpus/<target>/, copied to a scratch corpus so a run
# never dirties the checkout). Fails when a target finds a crash; libFuzzer
# then saves the input under fuzz/artifacts/<target>/ (see docs/fuzzing.md).
#
#   WF_FUZZ_SECONDS      seconds per target (default 30)
#   WF_FUZZ_TARGETS      targets to run (default: all of them)
#   WF_FUZZ_TARGET_DIR   build directory (default ~/.cache/wf-fuzz-target):
#                        nightly, instrumented artifacts cannot share the
#                        stable build's directory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${WF_FUZZ_SECONDS:-30}"
targets=(${WF_FUZZ_TARGETS:-decode_state kafka_record wit_model packed_state})
export CARGO_TARGET_DIR="${WF_FUZZ_TARGET_DIR:-$HOME/.cache/wf-fuzz-target}"

# cargo-fuzz wants nightly. A machine without one (only the stable toolchain
# can be had here) builds with stable told to accept nightly flags, which is
# enough without a sanitizer.
if rustup toolchain list | grep -q '^nightly'; then
  toolchain=+nightly
else
  toolchain=+stable
  export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# No sanitizer: wf-host, wf-store-kafka and their code under test deny unsafe code, so
# AddressSanitizer would look for memory errors only in dependencies (serde_json,
# std) that are fuzzed elsewhere, at about twice the run time and a second
# instrumented build of wasmtime and librdkafka. Panics, failed assertions and
# integer overflows (-a: debug assertions and overflow checks) are the bugs
# these targets look for. 16 codegen units: a cold build of the (unused but
# linked) wasmtime and cranelift crates is minutes shorter on 2 cores.
flags=(--release --debug-assertions --sanitizer none --codegen-units 16)

start=$(date +%s)
cargo "$toolchain" fuzz build "${flags[@]}"
echo "fuzz: built the targets in $(($(date +%s) - start)) s"

scratch=fuzz/scratch
failed=()
for target in "${targets[@]}"; do
  corpus="$scratch/$target"
  mkdir -p "$corpus"
  [[ -d fuzz/corpus/$target ]] && cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  dict=()
  [[ -f fuzz/dict/$target.dict ]] && dict=(-dict="fuzz/dict/$target.dict")
  echo "fuzz: $target for $seconds s"
  # -max_len: states of a few KiB reach every branch; -timeout: one input may
  # take at most 10 s; -rss_limit_mb: a leak or blow-up fails the run.
  if ! cargo "$toolchain" fuzz run "${flags[@]}" "$target" "$corpus" -- \
      -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "${dict[@]}" 2>"$scratch/$target.log"; then
    failed+=("$target")
    tail -n 40 "$scratch/$target.log" >&2
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+ *DONE' \
    "$scratch/$target.log" | sed "s/^/fuzz: $target: /" || true
done

if ((${#failed[@]})); then
  echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/; see docs/fuzzing.md)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran $seconds s each, no crash"
