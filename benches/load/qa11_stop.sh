#!/bin/sh
# qa11_stop.sh: SIGTERM (SIG=INT, TWICE=1 for a second signal 50 ms later) STOP_AT seconds into
# large pipelined echoes (wrk, qa11_pipe_post.lua) on C connections plus 4 fast GET / clients,
# on both stacks; prints wrk's counts next to the exit JSON's.
# usage: qa11_stop.sh [C DEPTH SIZE STOP_AT LOOPS]
C=${1:-200}; DEPTH=${2:-4}; SIZE=${3:-262144}; STOP_AT=${4:-2}; LOOPS=${5:-1}
SIG=${SIG:-TERM}
BIN=${BIN:-target/release/reqguard-demo}
DIR=$(dirname "$0")
for stack in mio hyper; do
  out=$(mktemp)
  $BIN serve --addr 127.0.0.1:0 --stack $stack --loops "$LOOPS" $EXTRA >"$out" 2>&1 &
  pid=$!
  sleep 0.3
  addr=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -1)
  QA_DEPTH=$DEPTH QA_SIZE=$SIZE wrk -t1 -c"$C" -d"$((STOP_AT + 3))s" -s "$DIR/qa11_pipe_post.lua" --timeout 10s "http://$addr/" >"$out.big" 2>&1 &
  big=$!
  wrk -t1 -c4 -d"$((STOP_AT + 3))s" --timeout 10s "http://$addr/" >"$out.fast" 2>&1 &
  fast=$!
  sleep "$STOP_AT"
  t0=$(date +%s.%N)
  kill -"$SIG" $pid
  [ -n "$TWICE" ] && { sleep 0.05; kill -"$SIG" $pid 2>/dev/null; }
  wait $pid; rc=$?
  t1=$(date +%s.%N)
  wait $big $fast
  echo "== $stack loops=$LOOPS C=$C DEPTH=$DEPTH SIZE=$SIZE sig=$SIG twice=${TWICE:-} exit=$rc after $(echo "$t1 - $t0" | bc) s"
  grep -E 'requests in|Socket errors|Non-2xx' "$out.big" | sed 's/^/big: /'
  grep -E 'requests in|Socket errors|Non-2xx' "$out.fast" | sed 's/^/fast: /'
  grep "^{" "$out" | tail -1 | python3 -c "import json,sys; r=json.load(sys.stdin); ks=('served','refused','aborted','leaked','rejected','connections_refused','force_closed','drain_deadline_hit','drain_ms'); print({k:r.get(k) for k in ks}, r['outcomes'], 'close_answered', sum(s.get('answered',0) for l in r['loops'] for s in l['steps'] if s['step']=='close'))"
  grep -v "^{\|^listening" "$out" | head -3 | cut -c1-300
  rm -f "$out" "$out.big" "$out.fast"
done
