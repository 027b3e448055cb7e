#!/usr/bin/env python3
"""qa16_bigecho: POST /echo near `max_body` (1 MiB) under load tools, keep-alive on and off, on
both stacks; then the exit JSON's counts beside what the tool read (as qa15_loadcount.py for
`GET /`): `served` must equal the answers read whole, but for those docs/server.md calls
undelivered; outcomes = served + undelivered + aborted (+ rejected answers of admitted
requests on hyper); leaked 0; and the server's resident memory (VmHWM) stays within the
limits table's bound (max_connections x buffering cap; here a handful of connections).
usage: BIN=target/release/reqguard-demo qa16_bigecho.py [CASE...]
  cases: wrk-ka wrk-close h2 h2-close ab ab-k wrk-413 (all by default); wrk, ab and h2load.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import read_by_tool, start, stop  # noqa: E402

BODY = 1_048_576  # exactly max_body: served
OVER = BODY + 1  # 413 + close

CASES = {
    "wrk-ka": ["wrk", "-t1", "-c8", "-d3", "-s", "{lua}", "{url}/echo"],
    "wrk-close": ["wrk", "-t1", "-c8", "-d3", "-s", "{lua}", "-H", "Connection: close", "{url}/echo"],
    "h2": ["h2load", "--h1", "-c8", "-n400", "-m1", "-d", "{file}", "{url}/echo"],
    "h2-close": ["h2load", "--h1", "-c8", "-n400", "-m1", "-d", "{file}", "-H", "connection: close",
                 "{url}/echo"],
    "ab": ["ab", "-q", "-n", "300", "-c", "8", "-p", "{file}", "{url}/echo"],
    "ab-k": ["ab", "-q", "-k", "-n", "300", "-c", "8", "-p", "{file}", "{url}/echo"],
    "wrk-413": ["wrk", "-t1", "-c8", "-d3", "-s", "{lua_over}", "{url}/echo"],
}


def lua_for(size, tmp):
    path = os.path.join(tmp, f"body{size}.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f'wrk.body = string.rep("a", {size})\n')
        f.write('wrk.headers["Content-Type"] = "application/octet-stream"\n')
    return path


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def main():
    names = sys.argv[1:] or list(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        body_file = os.path.join(tmp, "body")
        with open(body_file, "wb") as f:
            f.write(b"a" * BODY)
        subst = {"{lua}": lua_for(BODY, tmp), "{lua_over}": lua_for(OVER, tmp), "{file}": body_file}
        for name in names:
            for stack in ("mio", "hyper"):
                proc, (host, port) = start(stack)
                url = f"http://{host}:{port}"
                cmd = []
                for a in CASES[name]:
                    for k, v in subst.items():
                        a = a.replace(k, v)
                    cmd.append(a.replace("{url}", url))
                out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, timeout=300).stdout
                hwm = vm_hwm_kib(proc.pid)
                rep = stop(proc)
                read = read_by_tool(out)
                outcomes = sum(rep["outcomes"].values())
                counted = rep["served"] + rep["undelivered"] + rep["aborted"]
                non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                adds_up = outcomes == counted or (stack == "hyper" and outcomes == counted + rep["rejected"])
                want = rep["served"] + (rep["rejected"] if name == "wrk-413" else 0)
                mark = "  " if read == want and adds_up and rep["leaked"] == 0 else "!!"
                print(f"{mark} {name:9} {stack:5} tool read {read} served {rep['served']} rejected "
                      f"{rep['rejected']} undelivered {rep['undelivered']} aborted {rep['aborted']} "
                      f"outcomes {outcomes} leaked {rep['leaked']} VmHWM {hwm} KiB"
                      f"{' non2xx ' + non2xx.group(1) if non2xx else ''}", flush=True)
                if mark == "!!":
                    print("   ", out.strip().replace("\n", "\n    ")[-1500:])


main()
