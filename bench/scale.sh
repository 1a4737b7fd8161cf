#!/usr/bin/env bash
# Scale from zero: time to first byte of a request to a service with no running instance, minus the sample
# server's own start time (spawn → listening), measured on the same build. Bounded: RUNS cold starts (default 7).
# Traffic only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
source "$PWD/bench/lib.sh"
RUNS=${RUNS:-7}
cargo build --release --locked --quiet
BIN=$PWD/target/release/gatehouse
work=$(mktemp -d)
export GATEHOUSE_HOME=$work/home
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ms() { echo "$1" | awk '{printf "%.2f", $1 * 1000}'; }
# Instances are the daemon's `sample-hello` children.
instances() { pgrep -P "$pid" -f sample-hello | wc -l; }

# 1. The sample's own start: spawn → port accepts connections.
own=()
for _ in $(seq "$RUNS"); do
  port=$(free_port)
  t0=$(date +%s%N)
  PORT=$port K_SERVICE=bench K_REVISION=bench-00001-abc "$BIN" sample-hello >/dev/null 2>&1 &
  spid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do :; done
  t1=$(date +%s%N)
  kill "$spid"; wait "$spid" 2>/dev/null || true
  own+=("$(( (t1 - t0) / 1000 ))")
done

# 2. Cold requests through the platform.
"$BIN" up --port-base 0 --instance-idle-timeout=1s >"$work/up.log" 2>&1 &
pid=$!
until grep -q ready "$work/up.log"; do sleep 0.05; done
"$BIN" run deploy cold --image=us-docker.pkg.dev/cloudrun/container/hello --region=us-central1 --allow-unauthenticated >/dev/null 2>&1
url=$("$BIN" run services describe cold --region=us-central1 --format='value(status.url)')
cold=()
for _ in $(seq "$RUNS"); do
  for _ in $(seq 100); do [ "$(instances)" -eq 0 ] && break; sleep 0.1; done
  [ "$(instances)" -eq 0 ] || { echo "the service did not scale to zero" >&2; exit 1; }
  t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "$url")
  cold+=("$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000000}')")
done
warm=$(curl -s -o /dev/null -w '%{time_starttransfer}' "$url")

own_med=$(printf '%s\n' "${own[@]}" | median)
cold_med=$(printf '%s\n' "${cold[@]}" | median)
echo "runs: $RUNS"
echo "sample's own start (µs), median: $own_med  all: ${own[*]}"
echo "cold request TTFB (µs), median:  $cold_med  all: ${cold[*]}"
echo "warm request TTFB (ms):          $(ms "$warm")"
echo "scale-from-zero overhead (cold − own start), median: $(( (cold_med - own_med) / 1000 )) ms"
