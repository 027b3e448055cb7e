#!/bin/sh
# qa32_run: round 32's held-out hostile-client battery against `serve`, both stacks, bounded
# (about 10 minutes on 2 cores): the strict conformance matrix and smuggling mutations read by
# h11 (qa32_battery.py conform), the same cut at random points (split, smuggling cases, three
# seeds), closing answers with the client still sending (linger), pipelining deep and wide
# (qa32_pipe.py), SIGTERM and SIGINT mid-load (qa12_stop.py), slowhttptest's modes at 1,200
# connections (qa18_slowmodes.py), connection bursts and storms (qa15_burst.py), a
# never-reading pipeliner, idle floods over the limit (qa12_exhaust.py), and wrk / ab /
# h2load --h1 counted against the exit JSON (qa15_loadcount.py). Needs h11 (pip install h11),
# wrk, ab (apache2-utils), h2load (nghttp2-client), slowhttptest.
# usage: BIN=target/release/reqguard-demo benches/load/qa32_run.sh > qa32.log 2>&1
set -u
D=$(dirname "$0")
: "${BIN:=target/release/reqguard-demo}"
export BIN
run() { echo "=== $*"; timeout 900 "$@" 2>&1 | grep -E '^!!|^BAD|^SPLIT|^#|BAD|!!|served|read|cut|leaked' | head -80; }
run python3 "$D/qa32_battery.py" conform
for seed in 11 12 13; do ONLY=sm run python3 "$D/qa32_battery.py" split "" "$seed"; done
run python3 "$D/qa32_battery.py" linger
run python3 "$D/qa32_pipe.py" 2000 200 50
for s in mio hyper; do run python3 "$D/qa12_stop.py" "$s" 3 -; run python3 "$D/qa12_stop.py" "$s" 3 1; done
run python3 "$D/qa18_slowmodes.py" 1200 20
run python3 "$D/qa15_burst.py" close,rst,req-rst,req-close,half-req,req-read 8 300 64
for s in mio hyper; do run python3 "$D/qa12_exhaust.py" "$s" fields ext never idle; done
run python3 "$D/qa15_loadcount.py"
