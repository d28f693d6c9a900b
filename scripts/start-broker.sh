#!/usr/bin/env bash
# Starts a real Kafka-protocol broker (tansu, SQLite storage, which compacts)
# on a free loopback port, in the background, and prints shell exports:
#
#   eval "$(bash scripts/start-broker.sh)"   # sets WF_KAFKA_BROKERS, WF_BROKER_PID, WF_BROKER_DIR
#   ...
#   kill "$WF_BROKER_PID"
#
# Compaction runs every WF_BROKER_MAINTENANCE seconds (default 2), so the
# end-to-end suite can watch it happen.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tansu="$(bash "$here/install-tansu.sh")"
dir="$(mktemp -d "${TMPDIR:-/tmp}/wf-broker.XXXXXX")"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
interval="${WF_BROKER_MAINTENANCE:-2}"

cd "$dir"
# The SQLite path is relative to the working directory (tansu mangles sqlite:///abs).
nohup "$tansu" broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine "sqlite://wf.db?maintenance_interval=${interval}s" \
  > broker.log 2>&1 < /dev/null &
pid=$!

for _ in $(seq 1 100); do
  if grep -q "ready in" broker.log 2>/dev/null; then
    echo "export WF_KAFKA_BROKERS=127.0.0.1:$port WF_BROKER_PID=$pid WF_BROKER_DIR=$dir"
    echo "started tansu at 127.0.0.1:$port (pid $pid, data in $dir)" >&2
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
echo "tansu did not start; its log:" >&2
cat broker.log >&2
kill "$pid" 2>/dev/null || true
exit 1
