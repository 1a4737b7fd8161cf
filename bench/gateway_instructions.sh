#!/usr/bin/env bash
# bench/gateway_instructions.sh -- user-space instructions per proxied private request through the gateway, counted
# by callgrind: stable on this shared, noisy machine where wall-clock A/B runs drift by 20-35%. Use it to compare two
# builds of the gateway; bench/gateway.sh gives the figures users care about.
#
# The standalone gateway (crates/gateway/examples/bench_gateway.rs, legacy form: its own key ring, a token for the
# invoker printed on stdout, 1 worker thread) runs under valgrind in front of the built-in sample server
# (`gatehouse sample-hello`). wrk sends the same valid token on 8 connections, once for SHORT seconds and once for
# LONG seconds, each against a fresh gateway, counting only from when it is ready (callgrind_control -i on); instructions
# per request = (Ir_long - Ir_short) / (n_long - n_short), so what is left of shutdown cancels out.
# Knobs: SHORT (1), LONG (5). Needs valgrind and wrk (apt-get install valgrind wrk).
# Only 127.0.0.1 is contacted; every wrk run is bounded by -d and `timeout`; everything started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source "$PWD/bench/lib.sh"
SHORT=${SHORT:-1}
LONG=${LONG:-5}
for b in valgrind callgrind_annotate callgrind_control wrk curl; do
  command -v "$b" >/dev/null || { echo "$b is needed (apt-get install valgrind wrk curl)" >&2; exit 1; }
done
cargo build --release --locked --quiet -p cli -p gateway --example bench_gateway
GW=$PWD/target/release/examples/bench_gateway
BIN=$PWD/target/release/gatehouse
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT


backend=$(free_port)
PORT=$backend K_SERVICE=bench K_REVISION=bench-00001-abc "$BIN" sample-hello >/dev/null 2>&1 & pids+=($!)
wait_port "$backend" 20

# one SECONDS: a fresh gateway under callgrind, wrk for SECONDS; prints "requests instructions"
one() {
  local seconds=$1 port out gw token
  port=$(free_port)
  out=$work/cg.$seconds
  GW_THREADS=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$GW" "127.0.0.1:$backend" "$port" \
    >"$work/token.$seconds" 2>"$work/valgrind.$seconds" &
  gw=$!
  for _ in $(seq 300); do [ -s "$work/token.$seconds" ] && break; sleep 0.1; done
  token=$(head -1 "$work/token.$seconds")
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $token" "http://127.0.0.1:$port/")" = 200 ] && break
    sleep 0.2
  done
  # Count from here on: start-up (key generation, whose cost varies run to run) stays out.
  callgrind_control -i on "$gw" >/dev/null
  timeout $((seconds + 60)) wrk -t1 -c8 -d"${seconds}s" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/" \
    >"$work/wrk.$seconds"
  kill -INT "$gw"; wait "$gw" || true
  local n ir
  n=$(awk '/requests in/{print $1}' "$work/wrk.$seconds")
  ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
  echo "$n $ir"
}

read -r n1 i1 < <(one "$SHORT")
read -r n2 i2 < <(one "$LONG")
echo "requests: $n1 (${SHORT}s) and $n2 (${LONG}s) under callgrind"
echo "user-space instructions per proxied request: $(( (i2 - i1) / (n2 - n1) ))"
