#!/usr/bin/env python3
"""Load shapes, side by side: keep-alive without pipelining, connection churn, bodies, many idle
connections; each server against the raw mio floor and plain hyper, as ratios within one run.

    python3 benches/load/shapes.py [--servers mio,rghyper,hyper,floor] [--cases ka:1,close:64,...]
                                   [--dur 3] [--rounds 3] [--pin 0:1|none] [--no-build]

Servers as in run.py (mio, rghyper, hyper, floor, or NAME=CMD), each started fresh per case and
round on 127.0.0.1 and stopped by its PID (the demo's exit JSON must say leaked 0). For the churn
cases the floor closes every connection once answered (`REQGUARD_FLOOR_CLOSE`); it answers GET
only (no post case). The demo stacks (and any NAME=CMD whose program's name has `demo` in it)
get `--max-connections 16000 --idle-timeout-ms 60000` in the idle cases only (the defaults are
1,024 and 5 s).
With --pin S:L (default 0:1) the server runs on CPU S (`taskset -c S`) and the load tool (and the
idle holder) on CPU L: two cores, one each.
Cases (every count bounded; a tool's run is bounded by --dur or its request count and a timeout):
  ka:C              wrk -t1 -cC -dDUR, keep-alive GET /, no pipelining
  h2:C:N            h2load --h1 -cC -m1 -nN, keep-alive GET /
  close:C           wrk -t1 -cC -dDUR -H 'connection: close': a new connection per request
  ab:C:N            ab -r -q -cC -nN (no -k: HTTP/1.0, a connection per request)
  h2close:C:N       h2load --h1 -cC -m1 -nN -H 'connection: close': a connection per request
  post:C:SIZE       wrk -t1 -cC -dDUR, keep-alive POST /echo of SIZE bytes (the answer as large)
  idle:K:CASE       K connections held open and idle (each sent one GET / and read its answer
                    first) while CASE runs: per-connection memory (RSS with them less before,
                    per connection) and what K costs the busy connections' requests
Prints, per case and server: requests/s, server CPU (utime + stime of the process, /proc: exact
in total, 10 ms steps) per request, medians over the rounds, and the median (range) of the
per-round ratios to the floor and to plain hyper (each only where that server ran the case).
"""
import argparse, os, re, selectors, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (start, stop, cpu_ticks, lua, build)

TICK = os.sysconf("SC_CLK_TCK")
IDLE_ARGS = ["--max-connections", "16000", "--idle-timeout-ms", "60000"]
HOLDER = r"""
import socket, sys, time
addr, k = sys.argv[1], int(sys.argv[2])
host, port = addr.rsplit(":", 1)
socks = []
for i in range(k):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"hello" not in got:
        more = s.recv(4096)
        if not more:
            sys.exit(f"connection {i} closed before its answer")
        got += more
    socks.append(s)
print("held", len(socks), flush=True)
sys.stdin.readline()  # until told to go
alive = 0
for s in socks:
    s.setblocking(False)
    try:
        alive += s.recv(1) == b"" and 0 or 1
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
print("alive", alive, flush=True)
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tool(cmd, pin):
    return (["taskset", "-c", pin] if pin else []) + cmd


def load(case, addr, dur, tmp, pin):
    """Runs the case's client; returns (requests completed, errors seen)."""
    kind, *args = case.split(":")
    url = f"http://{addr}/"
    timeout = dur + 60
    if kind in ("ka", "close", "post"):
        cmd = ["wrk", "-t1", f"-c{args[0]}", f"-d{dur}s", "--timeout", "5s"]
        if kind == "close":
            cmd += ["-H", "connection: close"]
        if kind == "post":
            script = os.path.join(tmp, "post.lua")
            run.lua("post", args[1], script)
            cmd += ["-s", script]
            url += "echo"
        out = sh(tool(cmd + [url], pin), timeout)
        n = int(re.search(r"(\d+) requests in", out).group(1))
        errs = re.search(r"Socket errors: (.*)", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return n, (errs.group(1) if errs else "") + (f" non-2xx {bad.group(1)}" if bad else "")
    if kind == "ab":
        out = sh(tool(["ab", "-r", "-q", "-s", "10", f"-n{args[1]}", f"-c{args[0]}", url], pin), timeout)
        n = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
        failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
        return n, f"failed {failed}" if failed else ""
    if kind in ("h2", "h2close"):
        extra = ["-H", "connection: close"] if kind == "h2close" else []
        out = sh(tool(["h2load", "--h1", f"-c{args[0]}", "-m1", f"-n{args[1]}"] + extra + [url], pin),
                 timeout)
        m = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
        return int(m.group(1)), "" if m.group(2) == "0" else f"failed {m.group(2)}"
    sys.exit(f"unknown case {case}")


def sh(cmd, timeout):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout).stdout


def one(name, spec, case, opts, tmp):
    """One server, one case: (req/s, CPU µs/request, user µs/request, RSS KiB per idle conn)."""
    words, env = spec
    kind = case.split(":")[0]
    idle = 0
    if kind == "idle":
        _, k, case = case.split(":", 2)
        idle = int(k)
        if name in ("mio", "rghyper") or "demo" in os.path.basename(words[0]):
            words = words + IDLE_ARGS
        kind = case.split(":")[0]
    if name == "floor" and kind in ("close", "ab", "h2close"):
        env = {**env, "REQGUARD_FLOOR_CLOSE": "1"}
    server_pin, load_pin = opts.pin
    proc, addr = run.start(tool(words, server_pin), env)
    holder, per_conn = None, None
    try:
        if idle:
            rss0 = rss_kib(proc.pid)
            holder = subprocess.Popen(tool([sys.executable, "-c", HOLDER, addr, str(idle)], load_pin),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = holder.stdout.readline()
            if not line.startswith("held"):
                sys.exit(f"{name} {case}: the idle holder failed: {line!r}")
            per_conn = (rss_kib(proc.pid) - rss0) / idle
        t0, c0 = time.time(), run.cpu_ticks(proc.pid)
        n, errs = load(case, addr, opts.dur, tmp, load_pin)
        t1, c1 = time.time(), run.cpu_ticks(proc.pid)
        if holder:
            holder.stdin.write("go\n")
            holder.stdin.flush()
            alive = holder.stdout.readline().strip()
            holder.wait(timeout=60)
            if alive != f"alive {idle}":
                errs += f" idle: {alive}"
    finally:
        if holder and holder.poll() is None:
            holder.kill()
        leaked = run.stop(proc)
    if leaked:
        sys.exit(f"{name} {case}: leaked {leaked}")
    cpu, user = ((b - a) / TICK * 1e6 / max(n, 1) for a, b in zip(c0, c1))
    return n / (t1 - t0), cpu, user, per_conn, errs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--servers", default="mio,rghyper,hyper,floor")
    ap.add_argument("--cases", default="ka:1,ka:64,ka:256,ka:1000,h2:1000:100000,close:64,"
                    "ab:100:20000,post:64:1024,post:16:65536,post:4:1048576,idle:10000:ka:64")
    ap.add_argument("--dur", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pin", default="0:1", help="SERVER_CPU:LOAD_CPU, or none")
    ap.add_argument("--no-build", action="store_true", help="use the last release build")
    opts = ap.parse_args()
    opts.pin = (None, None) if opts.pin == "none" else tuple(opts.pin.split(":"))
    known = run.build() if not opts.no_build else None
    servers = {}
    for spec in opts.servers.split(","):
        name, _, cmd = spec.partition("=")
        if cmd:
            import shlex
            words, env = shlex.split(cmd), {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            servers[name] = (words, env)
        else:
            if known is None:
                known = run.build()
            servers[name] = known[name]
    names = list(servers)
    cases = opts.cases.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(opts.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for case in cases:
                for name in order:
                    inner = case.split(":", 2)[2] if case.startswith("idle:") else case
                    if name == "floor" and inner.startswith("post"):
                        continue
                    got = one(name, servers[name], case, opts, tmp)
                    results.setdefault((case, name), []).append(got)
                    rps, cpu, user, per_conn, errs = got
                    mem = f" {per_conn:.1f} KiB/idle conn" if per_conn is not None else ""
                    print(f"round {rnd + 1} {case:>20} {name:>8}: {rps:9.0f} req/s {cpu:7.2f} us "
                          f"CPU/req ({user:.2f} user){mem}{' ERR ' + errs if errs.strip() else ''}",
                          file=sys.stderr, flush=True)
    refs = [r for r in ("floor", "hyper") if r in names]
    head = "| case | server | req/s | CPU µs/req | user µs/req | KiB/idle conn |"
    for r in refs:
        head += f" req/s / {r} | CPU / {r} |"
    print("\n" + head)
    print("|---|---|---:|---:|---:|---:|" + "---:|---:|" * len(refs))
    for case in cases:
        for name in names:
            got = results.get((case, name))
            if not got:
                continue
            med = [statistics.median(g[i] for g in got) for i in range(3)]
            mems = [g[3] for g in got if g[3] is not None]
            row = (f"| `{case}` | {name} | {med[0]:,.0f} | {med[1]:.2f} | {med[2]:.2f} | "
                   f"{statistics.median(mems):.1f} |" if mems else
                   f"| `{case}` | {name} | {med[0]:,.0f} | {med[1]:.2f} | {med[2]:.2f} | |")
            for r in refs:
                ref = results.get((case, r))
                for col in (0, 1):
                    if ref and len(ref) == len(got):
                        ratios = sorted(g[col] / f[col] for g, f in zip(got, ref) if f[col])
                        row += (f" {statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |"
                                if ratios else " |")
                    else:
                        row += " |"
            print(row)


if __name__ == "__main__":
    main()
