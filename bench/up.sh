#!/usr/bin/env bash
# `gatehouse up`: start-to-ready time (first start on a fresh home, and restart on existing state) and idle RSS.
# Bounded: RUNS starts (default 7), each stopped with SIGTERM; everything listens on 127.0.0.1 with free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
source "$PWD/bench/lib.sh"
RUNS=${RUNS:-7}
cargo build --release --locked --quiet
BIN=$PWD/target/release/gatehouse
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Starts `up` on $1, prints "<ms to ready> <pid>" once the ready line appears.
start() {
  local home=$1 fifo="$work/fifo.$RANDOM"
  mkfifo "$fifo"
  local t0; t0=$(date +%s%N)
  GATEHOUSE_HOME=$home GATEHOUSE_LOG=warn "$BIN" up --port-base 0 >"$fifo" 2>/dev/null &
  local pid=$!
  while IFS= read -r line; do
    if [[ $line == *ready* ]]; then break; fi
  done <"$fifo"
  local t1; t1=$(date +%s%N)
  # Keep draining stdout so the daemon never blocks on a full pipe.
  cat "$fifo" >/dev/null &
  echo "$(( (t1 - t0) / 1000000 )) $pid"
}


first=(); again=(); rss=()
for i in $(seq "$RUNS"); do
  home="$work/home$i"
  read -r ms pid < <(start "$home"); first+=("$ms")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  read -r ms pid < <(start "$home"); again+=("$ms")
  sleep 2
  rss+=("$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
echo "runs: $RUNS"
echo "first start to ready (ms), median: $(printf '%s\n' "${first[@]}" | median)  all: ${first[*]}"
echo "restart to ready (ms), median:     $(printf '%s\n' "${again[@]}" | median)  all: ${again[*]}"
echo "idle RSS after 2 s (KiB), median:  $(printf '%s\n' "${rss[@]}" | median)  all: ${rss[*]}"
