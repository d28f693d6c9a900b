#!/usr/bin/env bash
# The whole test suite: unit tests, the store conformance suite, the CLI, and
# the example and test guests compiled to wasm32-wasip2 and run through the host.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
# The default members: every crate but the wasm guests, which the tests build.
cargo test
