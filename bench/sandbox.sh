#!/usr/bin/env bash
# The instance sandbox (needs root):
# 1. sandbox creation to ready, excluding the app's own start: the median cold-request TTFB of the sample with the
#    sandbox minus the same without it (GATEHOUSE_NO_SANDBOX=1), same build, same machine, RUNS cold starts each;
# 2. the sample through the gateway from inside another instance vs from the host shell: wrk, same URL string,
#    DUR seconds each (the calling instance gets --cpu=2, the host's wrk is not limited).
# Traffic only to 127.0.0.1 and to addresses inside namespaces the platform made; every load is bounded by -d.
set -euo pipefail
cd "$(dirname "$0")/.."
source "$PWD/bench/lib.sh"
RUNS=${RUNS:-9}
DUR=${DUR:-5}
[ "$(id -u)" = 0 ] || { echo "bench/sandbox.sh needs root (namespaces, cgroups)" >&2; exit 1; }
cargo build --release --locked --quiet
BIN=$PWD/target/release/gatehouse
PY=${GATEHOUSE_TEST_PYTHON:-$PWD/.venv/bin/python}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start() { # start NAME [ENV...]: a platform in its own home
  export GATEHOUSE_HOME=$work/$1; shift
  env "$@" "$BIN" up --port-base 0 --instance-idle-timeout=1s >"$GATEHOUSE_HOME.log" 2>&1 &
  pid=$!
  until grep -q ready "$GATEHOUSE_HOME.log" 2>/dev/null; do sleep 0.05; done
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
instances() { pgrep -P "$pid" -f sample-hello | wc -l; }

cold_median() { # the median cold TTFB (µs) of the sample on the running platform
  "$BIN" run deploy cold --image=us-docker.pkg.dev/cloudrun/container/hello --region=us-central1 \
    --allow-unauthenticated >/dev/null 2>&1
  local url; url=$("$BIN" run services describe cold --region=us-central1 --format='value(status.url)')
  local all=()
  for _ in $(seq "$RUNS"); do
    for _ in $(seq 100); do [ "$(instances)" -eq 0 ] && break; sleep 0.1; done
    [ "$(instances)" -eq 0 ] || { echo "the service did not scale to zero" >&2; exit 1; }
    t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "$url")
    all+=("$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000000}')")
  done
  echo "${all[*]}" >&2
  printf '%s\n' "${all[@]}" | median
}

start plain GATEHOUSE_NO_SANDBOX=1
grep -q 'sandbox  NOT ENFORCED' "$GATEHOUSE_HOME.log"
echo -n "cold TTFB without sandbox (µs): " >&2
plain=$(cold_median)
stop
start sandboxed
grep -q 'sandbox  on' "$GATEHOUSE_HOME.log"
echo -n "cold TTFB with sandbox (µs):    " >&2
boxed=$(cold_median)
echo "runs: $RUNS"
echo "cold request TTFB median: without sandbox $((plain / 1000)) ms, with sandbox $((boxed / 1000)) ms"
echo "sandbox creation to ready (difference of medians): $(( (boxed - plain) / 1000 )) ms"

# 2. Throughput from the host shell and from inside an instance, to the same URL.
"$BIN" run deploy target --image=us-docker.pkg.dev/cloudrun/container/hello --region=us-central1 \
  --allow-unauthenticated --min-instances=1 --concurrency=1000 >/dev/null 2>&1
"$BIN" run deploy caller --source="$PWD/tests/python/sandbox_probe" --command="$PY,main.py" --cpu=2 \
  --region=us-central1 --allow-unauthenticated >/dev/null 2>&1
target=$("$BIN" run services describe target --region=us-central1 --format='value(status.url)')
caller=$("$BIN" run services describe caller --region=us-central1 --format='value(status.url)')
rps() { awk '/Requests\/sec/ {printf "%d\n", $2}'; }
# Alternating runs (the machine's throughput drifts by ±20% over a minute), medians compared.
hosts=(); insides=()
for _ in $(seq "${PAIRS:-5}"); do
  hosts+=("$(timeout $((DUR + 20)) wrk -t1 -c8 -d"${DUR}s" "$target/" | rps)")
  insides+=("$(curl -s --max-time $((DUR + 30)) "$caller/wrk?url=$target/&d=$DUR&c=8" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["stdout"])' | rps)")
done
host=$(printf '%s\n' "${hosts[@]}" | median)
inside=$(printf '%s\n' "${insides[@]}" | median)
echo "sample through the gateway, wrk -t1 -c8 ${DUR}s x ${PAIRS:-5} alternating: host shell median $host req/s" \
  "(${hosts[*]}), inside an instance median $inside req/s (${insides[*]})"
awk -v h="$host" -v i="$inside" 'BEGIN {printf "inside / host: %.2f\n", i / h}'
