#!/usr/bin/env python3
"""Paired load runs: servers side by side, one case at a time, the order rotated per round.

    python3 benches/load/run.py [--servers mio,rghyper,hyper,floor] [--cases ka:64,pipe:64:16]
                                [--dur 3] [--rounds 3] [--ref hyper] [--no-build]

Servers (each started fresh per case and round, on 127.0.0.1, stopped by its PID):
  mio      target/release/reqguard-demo serve                 (SIGTERM; its exit JSON must say leaked 0)
  rghyper  target/release/reqguard-demo serve --stack hyper   (the same, on the hyper adapter)
  hyper    benches/plain_hyper_echo.rs: plain hyper 1.x, GET / and POST /echo, no checks
  floor    benches/floor_server.rs: the raw mio floor, a fixed 200 (GET only: no post or ab case)
  NAME=CMD any command line (leading VAR=value words are its environment) that prints
           `listening on ADDR`, e.g. before=/tmp/old-demo serve --addr 127.0.0.1:0
Cases (wrk counts answers, pipelined ones each; wrk, ab and h2load from Debian: apt-get install -y wrk apache2-utils nghttp2-client):
  ka:C           wrk -t1 -cC, keep-alive GET /
  pipe:C:D       wrk -t1 -cC, GET / pipelined D deep
  post:C:SIZE    wrk -t1 -cC, keep-alive POST /echo of SIZE bytes
  ab:C           ab -r -n 20000 -cC, a connection per request
  h2:C:N         h2load --h1 -cC -m1 -nN
Prints, per case: requests per second and server CPU (utime + stime, and utime alone, from
/proc/PID/stat) per request for each server, medians over the rounds, and the median (range) of the per-round
ratios to --ref. The machines are shared and noisy: compare ratios within one run only.
"""
import argparse, json, os, re, shlex, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICK = os.sysconf("SC_CLK_TCK")


def build():
    """The demo and the two bench servers, release; returns their executables."""
    subprocess.run(["cargo", "build", "--release", "--features", "server,hyper",
                    "--bin", "reqguard-demo"], cwd=ROOT, check=True)
    out = subprocess.run(["cargo", "bench", "--no-run", "--features", "server,hyper",
                          "--bench", "plain_hyper_echo", "--bench", "floor_server",
                          "--message-format=json"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    exes = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            exes[msg["target"]["name"]] = msg["executable"]
    demo = os.path.join(ROOT, "target", "release", "reqguard-demo")
    return {
        "mio": ([demo, "serve", "--addr", "127.0.0.1:0"], {}),
        "rghyper": ([demo, "serve", "--addr", "127.0.0.1:0", "--stack", "hyper"], {}),
        "hyper": ([exes["plain_hyper_echo"]], {"REQGUARD_PLAIN_HYPER_ADDR": "127.0.0.1:0"}),
        "floor": ([exes["floor_server"]], {"REQGUARD_FLOOR_SERVE": "1"}),
    }


def cpu_ticks(pid):
    """(utime + stime, utime) of the process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[11])


def start(cmd, env):
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on (\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    sys.exit(f"{cmd}: no `listening on` line")


def stop(proc):
    """SIGTERM, then its exit output; returns the `leaked` the demo reports (None otherwise)."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    m = re.search(r'"leaked":\s*(\d+)', out or "")
    return int(m.group(1)) if m else None


def lua(kind, arg, path):
    with open(path, "w") as f:
        if kind == "pipe":
            req = "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" * int(arg)
            f.write(f'init = function() req = "{req}" end\nrequest = function() return req end\n')
        else:
            f.write(f'wrk.method = "POST"\nwrk.body = string.rep("a", {int(arg)})\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')


def load(case, addr, dur, tmp):
    """Runs the case's client; returns requests completed (as the tool counts them)."""
    kind, *args = case.split(":")
    url = f"http://{addr}/"
    if kind in ("ka", "pipe", "post"):
        cmd = ["wrk", "-t1", f"-c{args[0]}", f"-d{dur}s", "--timeout", "5s"]
        if kind != "ka":
            script = os.path.join(tmp, f"{kind}.lua")
            lua(kind, args[1], script)
            cmd += ["-s", script]
            url += "echo" if kind == "post" else ""
        out = run(cmd + [url], dur)
        return int(re.search(r"(\d+) requests in", out).group(1))  # answers, pipelined too
    if kind == "ab":
        out = run(["ab", "-r", "-q", "-n", "20000", f"-c{args[0]}", url], 60)
        return int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
    if kind == "h2":
        out = run(["h2load", "--h1", f"-c{args[0]}", "-m1", f"-n{args[1]}", url], 60)
        return int(re.search(r"(\d+) succeeded", out).group(1))
    sys.exit(f"unknown case {case}")


def run(cmd, dur):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=dur + 60).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--servers", default="mio,rghyper,hyper,floor")
    ap.add_argument("--cases", default="ka:64,pipe:64:16,post:16:1024")
    ap.add_argument("--dur", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ref", default="hyper")
    ap.add_argument("--no-build", action="store_true", help="use the last release build")
    opts = ap.parse_args()
    known = build() if not opts.no_build else None
    servers = {}
    for spec in opts.servers.split(","):
        name, _, cmd = spec.partition("=")
        if cmd:
            words, env = shlex.split(cmd), {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            servers[name] = (words, env)
        else:
            if known is None:
                sys.exit("--no-build takes NAME=CMD servers only")
            servers[name] = known[name]
    names = list(servers)
    results = {}  # (case, server) -> [(rps, cpu_us_per_request)]
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(opts.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for case in opts.cases.split(","):
                for name in order:
                    if name == "floor" and case.split(":")[0] in ("post", "ab"):
                        continue  # GET only, never closes
                    proc, addr = start(*servers[name])
                    t0, c0 = time.time(), cpu_ticks(proc.pid)
                    n = load(case, addr, opts.dur, tmp)
                    t1, c1 = time.time(), cpu_ticks(proc.pid)
                    leaked = stop(proc)
                    if leaked:
                        sys.exit(f"{name} {case}: leaked {leaked}")
                    cpu, user = ((b - a) / TICK * 1e6 / max(n, 1) for a, b in zip(c0, c1))
                    results.setdefault((case, name), []).append((n / (t1 - t0), cpu, user))
                    print(f"round {rnd + 1} {case:>16} {name:>10}: {n / (t1 - t0):10.0f} req/s "
                          f"{cpu:7.2f} us CPU/request ({user:.2f} user)", file=sys.stderr,
                          flush=True)
    print(f"\n| case | server | req/s | CPU µs/request | user µs/request | req/s / {opts.ref} "
          f"| CPU / {opts.ref} | user / {opts.ref} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in opts.cases.split(","):
        ref = results.get((case, opts.ref))
        for name in names:
            got = results.get((case, name))
            if not got:
                continue
            rps = statistics.median(r for r, _, _ in got)
            cpu = statistics.median(c for _, c, _ in got)
            user = statistics.median(u for _, _, u in got)
            cells = ["", "", ""]
            if ref and len(ref) == len(got):
                for i, col in enumerate((0, 1, 2)):
                    ratios = sorted(g[col] / r[col] for g, r in zip(got, ref) if r[col])
                    if ratios:
                        cells[i] = (f"{statistics.median(ratios):.2f} "
                                    f"({ratios[0]:.2f}-{ratios[-1]:.2f})")
            print(f"| `{case}` | {name} | {rps:,.0f} | {cpu:.2f} | {user:.2f} | "
                  + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
