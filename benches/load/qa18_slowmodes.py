#!/usr/bin/env python3
"""qa18_slowmodes: slowhttptest in each of its modes against both stacks of `serve`, then the
exit JSON's counts checked: leaked 0, and outcomes = served + undelivered + aborted (every
admitted request has one outcome; on hyper, plus up to `rejected`: see `run`). Cases: slow headers (-H), slow bodies (-B) to `POST /echo`
and to a health probe (`POST /healthz/live`: its body is read before its `405` on both stacks
since round 18), the range attack (-R) and slow reads (-X, 10 pipelined `GET /` per connection, the most it sends).
Each run is bounded (`-l`); slowhttptest's last status line is printed (closed, pending,
connected, whether the service stayed available to its probe) beside the counts.
usage: BIN=target/release/reqguard-demo qa18_slowmodes.py [CONNECTIONS [SECONDS [CASE...]]]"""
import os
import re
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop  # noqa: E402

CASES = {
    "headers": ["-H", "-i", "2", "-u", "{url}/"],
    "body-echo": ["-B", "-i", "2", "-s", "8192", "-u", "{url}/echo"],
    "body-probe": ["-B", "-i", "2", "-s", "8192", "-u", "{url}/healthz/live"],
    "range": ["-R", "-a", "10", "-b", "3000", "-u", "{url}/"],
    "slowread": ["-X", "-k", "10", "-n", "1", "-z", "32", "-w", "512", "-y", "1024",
                 "-u", "{url}/"],
}


def last_status(out):
    """slowhttptest's last status block, on one line (its colours stripped)."""
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)
    blocks = re.findall(r"slow HTTP test status on (\d+)th second:\s*\n\s*\n(.*?)(?:\n\s*\n|\Z)", out, re.S)
    if not blocks:
        return out.strip().splitlines()[-1:] or ["(no status)"]
    second, body = blocks[-1]
    fields = dict(re.findall(r"^(\w[\w ]*?):\s+(\S+)", body, re.M))
    keys = ("initializing", "pending", "connected", "error", "closed", "service available")
    return [f"t={second}s " + " ".join(f"{k}={fields.get(k, '?')}" for k in keys)]


def run(stack, case, connections, seconds):
    proc, (host, port) = start(stack, extra=["--request-timeout-ms", "3000",
                                             "--idle-timeout-ms", "2000"])
    url = f"http://{host}:{port}"
    args = ["slowhttptest", "-c", str(connections), "-r", "500", "-l", str(seconds), "-p", "3"]
    args += [a.format(url=url) for a in CASES[case]]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("latin-1", "replace") + "\n(slowhttptest timed out)"
    rep = stop(proc)
    # Every admitted request has one outcome. mio admits a request once its body is whole, so
    # its `rejected` answers are of requests never admitted; hyper admits at the head, so a
    # route's `400`/`408`/`413` for a body that failed is `rejected` and *completed*
    # (docs/hyper.md): there the outcomes may exceed the answered ones by up to `rejected`.
    outcomes = sum(rep["outcomes"].values())
    answered = rep["served"] + rep["undelivered"] + rep["aborted"]
    extra = rep["rejected"] if stack == "hyper" else 0
    ok = rep["leaked"] == 0 and answered <= outcomes <= answered + extra
    print(f"{'  ' if ok else '!!'} {stack:5} {case:10} {last_status(out)[0]} | served={rep['served']} "
          f"rejected={rep['rejected']} undelivered={rep['undelivered']} aborted={rep['aborted']} "
          f"outcomes={rep['outcomes']} evicted={rep.get('connections_evicted')} "
          f"refused={rep.get('connections_refused')} leaked={rep['leaked']}", flush=True)
    return ok


def main():
    connections = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    cases = sys.argv[3:] or list(CASES)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ok = True
    for case in cases:
        for stack in ("mio", "hyper"):
            ok &= run(stack, case, connections, seconds)
    sys.exit(0 if ok else 1)


main()
