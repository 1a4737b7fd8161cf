#!/usr/bin/env bash
# bench/gateway.sh -- Gatehouse's gateway against the peer proxies, in one run on this machine.
#
# 1. Installs the peers if something is missing (../shared/peers/setup.sh: Debian packages + a PyJWT venv; root).
# 2. Builds `cargo build --release -p gateway --example bench_gateway`.
# 3. Runs the peers harness (run-all.sh) with the example as its server under test ("extra", 127.0.0.1:28087):
#    a private service whose IAM policy grants roles/run.invoker to the harness tokens' service account (plus 100
#    other bindings), so every request is verified (through the token cache) and checked with iam::decide.
# 4. Rotation phase, against servers this script starts itself from the harness's rendered configs: 10,000 distinct
#    valid tokens (signed with the harness key, so HAProxy can verify them too) cycled by wrk
#    (bench/rotate_tokens.lua), at 64 connections for ROT_DUR seconds each: HAProxy jwt_verify, the gateway
#    started fresh (every token a cache miss on first sight), and the gateway with its cache off (--cache 0: one RSA
#    verification per request, like HAProxy). The gateway's VmRSS is sampled every 0.5 s during its run and read
#    again 2 s after.
# 5. Prints a markdown table (and writes it to $OUT/gateway.md).
#
# Knobs: REPS (default 3), DUR (10), CONFIGS (default "direct nginx haproxy haproxy_jwt apache_oidc"),
#        TOKENS (10000), ROT_DUR (10), SKIP_HARNESS=1 (rotation phase only, on the last harness run's keys/configs).
# Only 127.0.0.1 is contacted; every wrk run is bounded by -d and `timeout`; everything started is stopped by PID.
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
source "$ROOT/bench/lib.sh"
PEERS="$ROOT/../shared/peers"
export PEERS_WORK=${PEERS_WORK:-/tmp/gatehouse-peers}
WORK=$PEERS_WORK
PY=$WORK/venv/bin/python
export REPS=${REPS:-3}
export DUR=${DUR:-10}
export CONFIGS=${CONFIGS:-"direct nginx haproxy haproxy_jwt apache_oidc"}
TOKENS=${TOKENS:-10000}
ROT_DUR=${ROT_DUR:-10}
INVOKER=serviceAccount:invoker@peers-bench.iam.gserviceaccount.com
TS=$(date -u +%Y%m%dT%H%M%SZ)
export OUT=${OUT:-$WORK/results/gateway-$TS}
mkdir -p "$OUT"

# ---------------------------------------------------------------- 1. peers installed?
need_setup=0
for b in wrk nginx haproxy apache2 caddy curl; do command -v "$b" >/dev/null || need_setup=1; done
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || need_setup=1
[ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] || need_setup=1
"$PY" -c 'import jwt, cryptography' 2>/dev/null || need_setup=1
if [ "$need_setup" = 1 ]; then bash "$PEERS/setup.sh"; fi

# ---------------------------------------------------------------- 2. build
(cd "$ROOT" && cargo build --release -q -p gateway --example bench_gateway)
GW="$ROOT/target/release/examples/bench_gateway"
gw_cmd() { # gw_cmd KEYS_DIR [extra args]
  local keys=$1; shift
  echo "$GW --listen 127.0.0.1:28087 --upstream 127.0.0.1:28080 --jwks $keys/jwks.json" \
       "--audience http://127.0.0.1:28087 --invoker $INVOKER $*"
}

# ---------------------------------------------------------------- 3. the harness
if [ "${SKIP_HARNESS:-0}" != 1 ]; then
  EXTRA_CMD=$(gw_cmd @KEYS@) EXTRA_JWT=1 bash "$PEERS/run-all.sh"
fi
SUMMARY="$OUT/summary.tsv"
RUN=$WORK/run
KEYS=$RUN/keys

# ---------------------------------------------------------------- 4. rotation phase
declare -A PIDS=()
stop_all() {
  local n p
  for n in "${!PIDS[@]}"; do
    p=${PIDS[$n]}
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM
for p in 28080 28083 28087; do
  if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p already in use; aborting" >&2; exit 1; fi
done

echo "minting $TOKENS tokens for each of :28083 and :28087 with $KEYS/key.pem" >&2
"$PY" "$ROOT/bench/mint_tokens.py" "$KEYS" "$TOKENS" http://127.0.0.1:28083 > "$OUT/tokens-28083.txt"
"$PY" "$ROOT/bench/mint_tokens.py" "$KEYS" "$TOKENS" http://127.0.0.1:28087 > "$OUT/tokens-28087.txt"

nginx -e "$RUN/backend-nginx-error.log" -c "$RUN/backend-nginx.conf" -g 'daemon off;' \
  > "$OUT/rot-backend.log" 2>&1 & PIDS[backend]=$!
haproxy -db -f "$RUN/haproxy-jwt.cfg" > "$OUT/rot-haproxy.log" 2>&1 & PIDS[haproxy_jwt]=$!
wait_port 28080; wait_port 28083

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rotate() { # rotate NAME PORT [PID to sample]: one wrk run through the rotation script
  local name=$1 port=$2 pid=${3:-} max=0 r
  timeout $((ROT_DUR + 20)) wrk -t2 -c64 -d"${ROT_DUR}s" --latency -s "$ROOT/bench/rotate_tokens.lua" \
    "http://127.0.0.1:$port/" -- "$OUT/tokens-$port.txt" > "$OUT/rot-$name.wrk" 2>&1 &
  local w=$!
  while kill -0 "$w" 2>/dev/null; do
    if [ -n "$pid" ]; then r=$(rss_kb "$pid"); [ "$r" -gt "$max" ] && max=$r; fi
    sleep 0.5
  done
  wait "$w" || true
  echo "$max"
}
rps() { awk '/Requests\/sec/{print $2}' "$1"; }
bad() { awk '/Non-2xx/{n+=$NF} /Socket errors/{n+=1} END{print n+0}' "$1"; }
p99() { awk '$1=="99%"{print $2}' "$1"; }

# warm HAProxy up with the rotation for 2 s (not recorded), then measure
timeout 20 wrk -t2 -c64 -d2s -s "$ROOT/bench/rotate_tokens.lua" http://127.0.0.1:28083/ -- "$OUT/tokens-28083.txt" \
  > /dev/null 2>&1 || true
rotate haproxy_jwt 28083 > /dev/null

# the gateway, started fresh: the first pass over the tokens misses the cache
# shellcheck disable=SC2046
$(gw_cmd "$KEYS") > "$OUT/rot-gateway.log" 2>&1 & PIDS[gateway]=$!
wait_port 28087
RSS_IDLE=$(rss_kb "${PIDS[gateway]}")
RSS_MAX=$(rotate gateway 28087 "${PIDS[gateway]}")
sleep 2
RSS_AFTER=$(rss_kb "${PIDS[gateway]}")
kill -TERM "${PIDS[gateway]}"; wait "${PIDS[gateway]}" 2>/dev/null || true; unset 'PIDS[gateway]'

# the gateway with its token cache off: one RSA verification per request, as HAProxy
# shellcheck disable=SC2046
$(gw_cmd "$KEYS" --cache 0) > "$OUT/rot-gateway-nocache.log" 2>&1 & PIDS[gateway]=$!
wait_port 28087
RSS_NC=$(rotate gateway_nocache 28087 "${PIDS[gateway]}")
stop_all

# ---------------------------------------------------------------- 5. the table
{
  echo "## Gateway vs peers — bench/gateway.sh ($(date -u +%F), REPS=$REPS, DUR=${DUR}s, 2 cores)"
  echo
  if [ -f "$SUMMARY" ]; then
    echo "| configuration | req/s @64 (median) | vs direct | vs nginx | p50 / p99 ms @8 | proxy CPU µs/request |"
    echo "|---|---|---|---|---|---|"
    awk -F'\t' '
      NR==1 { for (i=1;i<=NF;i++) c[$i]=i; next }
      { k=$1"/"$2; rps[k]=$c["rps_med"]; p50[k]=$c["p50_ms"]; p99[k]=$c["p99_ms"]; cpu[k]=$c["proxy_cpu_us_per_req"]
        if (!seen[$1]++) order[++n]=$1 }
      END {
        d=rps["direct/tput"]; g=rps["nginx/tput"]
        for (i=1;i<=n;i++) { x=order[i]; name=(x=="extra")?"gatehouse (bench_gateway)":x
          printf "| %s | %d | %.2f | %s | %.2f / %.2f | %s |\n", name, rps[x"/tput"], rps[x"/tput"]/d,
            (g>0 ? sprintf("%.2f", rps[x"/tput"]/g) : "—"), p50[x"/lat"], p99[x"/lat"],
            (x=="direct" ? "—" : sprintf("%.1f", cpu[x"/tput"])) } }' "$SUMMARY"
    echo
  fi
  h=$(rps "$OUT/rot-haproxy_jwt.wrk"); g=$(rps "$OUT/rot-gateway.wrk"); n=$(rps "$OUT/rot-gateway_nocache.wrk")
  echo "$TOKENS distinct valid tokens in rotation, 64 connections, ${ROT_DUR}s each:"
  echo
  echo "| server | req/s | vs haproxy_jwt | p99 | non-2xx + socket errors | gateway VmRSS |"
  echo "|---|---|---|---|---|---|"
  printf '| haproxy_jwt | %.0f | 1.00 | %s | %s | — |\n' "$h" "$(p99 "$OUT/rot-haproxy_jwt.wrk")" "$(bad "$OUT/rot-haproxy_jwt.wrk")"
  printf '| gatehouse, token cache on (starts empty) | %.0f | %.2f | %s | %s | %.1f MB max during, %.1f MB 2 s after (%.1f MB idle before) |\n' \
    "$g" "$(echo "$g / $h" | bc -l)" "$(p99 "$OUT/rot-gateway.wrk")" "$(bad "$OUT/rot-gateway.wrk")" \
    "$(echo "$RSS_MAX / 1024" | bc -l)" "$(echo "$RSS_AFTER / 1024" | bc -l)" "$(echo "$RSS_IDLE / 1024" | bc -l)"
  printf '| gatehouse, token cache off (RSA verify per request) | %.0f | %.2f | %s | %s | %.1f MB max |\n' \
    "$n" "$(echo "$n / $h" | bc -l)" "$(p99 "$OUT/rot-gateway_nocache.wrk")" "$(bad "$OUT/rot-gateway_nocache.wrk")" \
    "$(echo "$RSS_NC / 1024" | bc -l)"
  echo
  echo "Raw: $OUT"
} | tee "$OUT/gateway.md"
