#!/usr/bin/env bash
# The main job: build the example guests and run the quick-start workflow
# through wfhost, printing its result and the state it stored.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
cargo build --quiet --release --target wasm32-wasip2 -p pipeline -p order-pipeline -p ledger
guests="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release"

echo "== wfhost run pipeline.wasm --id pipeline-001 --input '\"start processing\"'"
cargo run --quiet -p wfhost -- \
  run "$guests/pipeline.wasm" --id pipeline-001 --input '"start processing"'

echo
echo "== the same run, printed as the stored JSON (the wire format a Go service reads)"
cargo run --quiet -p wfhost -- --output json \
  run "$guests/pipeline.wasm" --id pipeline-001 --input '"start processing"'
