#!/usr/bin/env bash
# bench/secrets.sh -- Secret Manager over loopback REST with Data Access audit on (the default):
#   1. `:access` of `latest` at 1 connection (latency: p50, p99) and at CONNS connections (accesses/s, p50, p99),
#      then a count of the DATA_READ rows in the audit table against the requests wrk completed;
#   2. durable `:addVersion` at CONNS connections (versions/s, p50);
#   3. for comparison, `:access` again with Data Access logging switched off through the project's auditConfigs;
#   4. `secrets.get` (an ADMIN_READ call) with ADMIN_READ audit logs off, then on for allServices.
# Knobs: DUR (seconds per wrk run, default 10), CONNS (32), THREADS (wrk threads, 2), PAYLOAD (bytes, 32).
# Only 127.0.0.1 is contacted; every wrk run is bounded by -d and `timeout`; the daemon it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
PAYLOAD=${PAYLOAD:-32}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --locked --quiet -p cli
BIN=$PWD/target/release/gatehouse

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

export GATEHOUSE_HOME=$work/home
mkdir -p "$GATEHOUSE_HOME"
mkfifo "$work/fifo"
GATEHOUSE_LOG=warn "$BIN" up --port-base 0 >"$work/fifo" 2>/dev/null &
pid=$!
while IFS= read -r line; do [[ $line == *ready* ]] && break; done <"$work/fifo"
cat "$work/fifo" >/dev/null &
api=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["api"])' "$GATEHOUSE_HOME/daemon.json")
case $api in http://127.0.0.1:*) ;; *) echo "unexpected API address $api" >&2; exit 1 ;; esac

head -c "$PAYLOAD" /dev/urandom >"$work/payload"
"$BIN" secrets create bench --data-file="$work/payload" 2>/dev/null
export TOKEN
TOKEN=$("$BIN" auth print-access-token)
data=$(base64 -w0 "$work/payload")

cat >"$work/access.lua" <<'EOF'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
EOF
cat >"$work/add.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"payload":{"data":"$data"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
EOF

# run NAME CONNS LUA URL: wrk with latency percentiles; prints "rps p50 p99 requests" and keeps the raw output.
run() {
  local name=$1 conns=$2 lua=$3 url=$4 threads=$THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  timeout $((DUR + 30)) wrk -t"$threads" -c"$conns" -d"${DUR}s" --latency -s "$lua" "$url" >"$work/$name.txt"
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    / requests in / { n = $1 }
    /Non-2xx/ { bad = $NF }
    END { printf "%d %d %d %d %d\n", rps, p50, p99, n, bad }' "$work/$name.txt"
}

access_url="$api/v1/projects/local-project/secrets/bench/versions/latest:access"
curl -sf -H "Authorization: Bearer $TOKEN" "$access_url" >/dev/null
before=$(python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM audit WHERE entry LIKE ?", ("%AccessSecretVersion%",)).fetchone()[0])' "$GATEHOUSE_HOME/state.db")
read -r rps1 p50_1 p99_1 n1 bad1 < <(run access1 1 "$work/access.lua" "$access_url")
read -r rps32 p50_32 p99_32 n32 bad32 < <(run access32 "$CONNS" "$work/access.lua" "$access_url")
after=$(python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM audit WHERE entry LIKE ?", ("%AccessSecretVersion%",)).fetchone()[0])' "$GATEHOUSE_HOME/state.db")
read -r arps ap50 ap99 an abad < <(run add "$CONNS" "$work/add.lua" "$api/v1/projects/local-project/secrets/bench:addVersion")

# For comparison: the same reads with Data Access logging switched off in the project's auditConfigs.
"$BIN" projects get-iam-policy local-project --format=json |
  python3 -c 'import json, sys; p = json.load(sys.stdin); p["auditConfigs"] = [{"service": "secretmanager.googleapis.com"}]; print(json.dumps(p))' \
  >"$work/policy.json"
"$BIN" projects set-iam-policy local-project "$work/policy.json" >/dev/null 2>&1
read -r orps1 op50_1 _ _ _ < <(run off1 1 "$work/access.lua" "$access_url")
read -r orps32 op50_32 _ _ _ < <(run off32 "$CONNS" "$work/access.lua" "$access_url")

# 4. The cost of ADMIN_READ audit logs: `secrets.get` (an ADMIN_READ call), logged off (Google's default, as set
#    above) and then on for allServices.
get_url="$api/v1/projects/local-project/secrets/bench"
read -r grps_off gp50_off gp99_off _ _ < <(run get_off "$CONNS" "$work/access.lua" "$get_url")
"$BIN" projects get-iam-policy local-project --format=json |
  python3 -c 'import json, sys; p = json.load(sys.stdin); p["auditConfigs"] = [{"service": "allServices", "auditLogConfigs": [{"logType": "ADMIN_READ"}]}]; print(json.dumps(p))' \
  >"$work/policy-admin-read.json"
"$BIN" projects set-iam-policy local-project "$work/policy-admin-read.json" >/dev/null 2>&1
count_gets() { python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM audit WHERE entry LIKE ?", ("%GetSecret\"%",)).fetchone()[0])' "$GATEHOUSE_HOME/state.db"; }
gets_before=$(count_gets)
read -r grps_on gp50_on gp99_on gn_on gbad_on < <(run get_on "$CONNS" "$work/access.lua" "$get_url")
gets_after=$(count_gets)

cat <<EOF
| what | result | target |
|---|---|---|
| \`:access\` p50 / p99, 1 connection | ${p50_1} µs / ${p99_1} µs (${rps1}/s) | p50 ≤ 200 µs |
| \`:access\` at ${CONNS} connections | **${rps32}/s**, p50 ${p50_32} µs, p99 ${p99_32} µs | ≥ 20,000/s |
| DATA_READ entries written during both runs | $((after - before)) for $((n1 + n32)) completed requests (non-2xx: $((bad1 + bad32))) | one per access |
| durable \`:addVersion\` at ${CONNS} connections | **${arps}/s**, p50 ${ap50} µs, p99 ${ap99} µs (non-2xx: ${abad}) | ≥ 2,000/s |
| for comparison, Data Access logging off: \`:access\` | p50 ${op50_1} µs at 1 connection; ${orps32}/s (p50 ${op50_32} µs) at ${CONNS} | — |
| \`secrets.get\` at ${CONNS} connections, ADMIN_READ logs off (Google's default) | ${grps_off}/s, p50 ${gp50_off} µs, p99 ${gp99_off} µs | — |
| \`secrets.get\` at ${CONNS} connections, ADMIN_READ logs on for allServices | ${grps_on}/s, p50 ${gp50_on} µs, p99 ${gp99_on} µs; $((gets_after - gets_before)) entries for ${gn_on} requests (non-2xx: ${gbad_on}) | — |
EOF
echo "(${DUR} s per run, ${THREADS} wrk threads, ${PAYLOAD}-byte payload; wrk on the same machine: $(nproc) cores)"
