#!/usr/bin/env python3
"""qa15_loadcount: load tools against both stacks, then the exit JSON's counts beside what the
tool read: `served` must equal the answers the client read whole, but for those the docs call
undelivered (docs/server.md, "Undelivered answers"), and outcomes = served + undelivered +
aborted, leaked 0. wrk counts the answers it read; ab and h2load the requests they completed.
usage: BIN=target/release/reqguard-demo qa15_loadcount.py [CASE...]
  cases: wrk-ka wrk-close ab ab-k h2 h2-m8 (all by default); wrk, ab (apache2-utils) and h2load
  (nghttp2-client) must be installed.
Round 15 (2026-12-01), before main 01c4eac: wrk's keep-alive run read 180,277 answers from
mio, whose JSON said served 109,889 / undelivered 70,413; 198,138 from hyper, served 3,097 /
undelivered 195,104 (wrk resets its busy connections at the end, and `sock_diag` no longer
found a reset socket: the count fell back to `written - 2 * SO_SNDBUF`). After 01c4eac (the
lead's TCP_INFO count) every case's served equals what the tool read on both stacks (wrk-ka
mio 418,455 read, served 418,455, undelivered 31)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import read_by_tool, start, stop  # noqa: E402

CASES = {
    "wrk-ka": ["wrk", "-t1", "-c64", "-d3", "{url}/"],
    "wrk-close": ["wrk", "-t1", "-c64", "-d3", "-H", "Connection: close", "{url}/"],
    "ab": ["ab", "-q", "-n", "5000", "-c", "50", "{url}/"],
    "ab-k": ["ab", "-q", "-k", "-n", "5000", "-c", "50", "{url}/"],
    "h2": ["h2load", "--h1", "-c50", "-n20000", "-m1", "{url}/"],
    "h2-m8": ["h2load", "--h1", "-c50", "-n20000", "-m8", "{url}/"],
}


def main():
    names = sys.argv[1:] or list(CASES)
    for name in names:
        for stack in ("mio", "hyper"):
            proc, (host, port) = start(stack)
            url = f"http://{host}:{port}"
            cmd = [a.replace("{url}", url) for a in CASES[name]]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=120).stdout
            rep = stop(proc)
            read = read_by_tool(out)
            outcomes = sum(rep["outcomes"].values())
            adds_up = outcomes == rep["served"] + rep["undelivered"] + rep["aborted"]
            mark = "  " if read == rep["served"] and adds_up and rep["leaked"] == 0 else "!!"
            print(f"{mark} {name:9} {stack:5} tool read {read}  served {rep['served']} undelivered "
                  f"{rep['undelivered']} aborted {rep['aborted']} outcomes {outcomes} leaked {rep['leaked']}",
                  flush=True)


main()
