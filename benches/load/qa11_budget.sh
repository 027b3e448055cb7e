#!/bin/sh
# qa11_budget.sh: large pipelined echoes (wrk, qa11_pipe_post.lua) on C connections while 4 fast
# GET / clients (a second wrk) measure latency, mio and --stack hyper one after the other in
# one run; then the exit JSON of each. usage: qa11_budget.sh [C DEPTH SIZE SECONDS]
C=${1:-200}; DEPTH=${2:-4}; SIZE=${3:-262144}; SECS=${4:-8}
BIN=${BIN:-target/release/reqguard-demo}
DIR=$(dirname "$0")
for stack in mio hyper; do
  out=$(mktemp)
  $BIN serve --addr 127.0.0.1:0 --stack $stack >"$out" 2>&1 &
  pid=$!
  sleep 0.3
  addr=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -1)
  QA_DEPTH=$DEPTH QA_SIZE=$SIZE wrk -t1 -c"$C" -d"${SECS}s" -s "$DIR/qa11_pipe_post.lua" --timeout 10s "http://$addr/" >"$out.big" 2>&1 &
  big=$!
  sleep 0.5
  wrk -t1 -c4 -d"$((SECS - 2))s" --latency --timeout 10s "http://$addr/" >"$out.fast" 2>&1
  wait $big
  kill -TERM $pid; wait $pid
  echo "== $stack C=$C DEPTH=$DEPTH SIZE=$SIZE"
  grep -E 'Requests/sec|Socket errors|Non-2xx|requests in' "$out.big" | sed 's/^/big: /'
  grep -E 'Latency|99%|90%|50%|Requests/sec|Socket errors' "$out.fast" | sed 's/^/fast: /'
  tail -1 "$out" | cut -c1-330
  rm -f "$out" "$out.big" "$out.fast"
done
