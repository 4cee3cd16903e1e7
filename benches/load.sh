#!/usr/bin/env bash
# End-to-end load scenarios against a release build of the real server over
# HTTP, measured with the common yardstick (../shared/tools/tsbench).
#
#   benches/load.sh SCENARIO [tsbench args...]
#   benches/load.sh ingest --metrics 10000 --points 100 --batch 10000 --concurrency 4
#   benches/load.sh ingest --metrics 10000 --points 1 --batch 10000 --concurrency 4
#   benches/load.sh query
#   benches/load.sh idle --seconds 10
#
# Starts `gnocchid serve` on the embedded defaults in a fresh data directory
# (port 18041), passes its pid to tsbench so server CPU and RSS are sampled,
# prints tsbench's table and JSON line, and stops the server. BENCH_DIR (default
# /var/tmp) holds the data directory: see benches/README.md on fresh file systems.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${GNOCCHID_SHARED:-$here/../shared}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/gnocchid-target}
tsbench_target=${TSBENCH_TARGET_DIR:-/var/tmp/tsbench-target}
port=${PORT:-18041}
scenario=${1:?usage: benches/load.sh SCENARIO [tsbench args...]}
shift

(cd "$here" && cargo build --release --bin gnocchid)
CARGO_TARGET_DIR=$tsbench_target cargo build --release --manifest-path "$shared/tools/tsbench/Cargo.toml"

data=$(mktemp -d "${BENCH_DIR:-/var/tmp}/gnocchid-bench.XXXXXX")
"$CARGO_TARGET_DIR/release/gnocchid" serve --listen "127.0.0.1:$port" --data-dir "$data" \
    >"$data.stdout" 2>"$data.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$data.stdout" "$data.log"' EXIT
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthcheck" && break
    sleep 0.1
done
if [ "$scenario" = idle ]; then
    sleep 5
fi
"$tsbench_target/release/tsbench" "$scenario" --url "http://127.0.0.1:$port" \
    --label gnocchid --pids "$pid" "$@"
