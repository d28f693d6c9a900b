#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker (with its SQLite storage engine, the one
# that compacts) into a cached root, once. Prints the binary's path.
#
# No Docker engine and no Java Kafka distribution can be had on the machines this
# project is built on, so the end-to-end suite's real broker comes from crates.io.
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TOOLS_ROOT="${WF_TOOLS_ROOT:-$HOME/.cache/wf-tools}"
bin="$TOOLS_ROOT/tansu-$TANSU_VERSION/bin/tansu"

if [[ ! -x "$bin" ]]; then
  echo "installing tansu $TANSU_VERSION into $TOOLS_ROOT (about 15 minutes, once)" >&2
  # A target dir of its own, kept, so an interrupted install resumes.
  CARGO_TARGET_DIR="$TOOLS_ROOT/tansu-build" \
    cargo install tansu --version "$TANSU_VERSION" --features libsql --locked \
      --root "$TOOLS_ROOT/tansu-$TANSU_VERSION" >&2
fi
echo "$bin"
