# bench/lib.sh -- helpers the bench scripts share (sourced, not run). Only 127.0.0.1 is contacted.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits (up to ${2:-10} s) until http://127.0.0.1:$1/ answers anything.
wait_port() {
  for _ in $(seq $(( ${2:-10} * 10 ))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/" || true)" != 000 ] && return 0
    sleep 0.1
  done
  echo "port $1 did not come up" >&2; return 1
}

# The median of the numbers on standard input, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
