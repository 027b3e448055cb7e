#!/usr/bin/env python3
"""load21: one load case against one server, with an optional concurrent attack; checks what the
clients saw against the server's exit JSON.

    python3 benches/load/load21.py SERVER CASE [--attack none|slowloris|slowread|slowbody|flood|all]
                                   [--dur 3] [--rss] [--json]

SERVER: mio | rghyper | hyper | floor (release binaries under target/release; the bench servers
found by their name under target/release/deps) or NAME=CMD as in run.py.
CASE: ka:C, pipe:C:D, post:C:SIZE (wrk -t1 --latency), h2:C:N (h2load --h1 -m1),
      h2post:C:N:SIZE (h2load --h1 -d FILE).
Attacks (started 0.5 s before the client, stopped after it; every process is this script's):
  slowloris  slowhttptest -H: 400 connections sending a header line every 5 s
  slowread   slowhttptest -X: 400 connections reading their answers 32 bytes every 3 s
  slowbody   slowhttptest -B: 400 connections sending a body 24 bytes every 5 s
  flood      1,600 connections opened and held silent (past --max-connections 1,024)
  all        the four at once
Prints one line per run: req/s, latency p50/p99/max, client errors and non-2xx, the exit JSON's
served/rejected/refused/connections_refused/evicted/leaked, VmRSS first/peak/last, the stop's time.
"""
import argparse, glob, json, os, re, shlex, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def servers():
    demo = os.path.join(ROOT, "target", "release", "reqguard-demo")
    def newest(name):
        found = [p for p in glob.glob(os.path.join(ROOT, "target/release/deps", name + "-*"))
                 if os.access(p, os.X_OK) and not p.endswith(".d")]
        return max(found, key=os.path.getmtime) if found else name
    return {
        "mio": ([demo, "serve", "--addr", "127.0.0.1:0"], {}),
        "rghyper": ([demo, "serve", "--addr", "127.0.0.1:0", "--stack", "hyper"], {}),
        "hyper": ([newest("plain_hyper_echo")], {"REQGUARD_PLAIN_HYPER_ADDR": "127.0.0.1:0"}),
        "floor": ([newest("floor_server")], {"REQGUARD_FLOOR_SERVE": "1"}),
    }


def start(cmd, env, out_path):
    out = open(out_path, "w+")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.DEVNULL,
                            text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(out_path) as f:
            m = re.search(r"listening on (\S+)", f.read())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    sys.exit(f"{cmd}: no `listening on` line")


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return None


class Sampler(threading.Thread):
    def __init__(self, pid, every=0.25):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.done = pid, every, [], False

    def run(self):
        while not self.done:
            r = rss_kb(self.pid)
            if r is not None:
                self.samples.append((time.time(), r))
            time.sleep(self.every)


def flood(addr, n, hold, stats):
    """n connections opened and held silent for `hold` seconds; counts what they were told."""
    host, port = addr.rsplit(":", 1)
    socks = []
    end = time.time() + hold
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex((host, int(port)))
        except OSError:
            stats["connect_err"] = stats.get("connect_err", 0) + 1
            s.close()
            continue
        socks.append(s)
    while time.time() < end:
        time.sleep(0.1)
    for s in socks:
        try:
            s.setblocking(False)
            got = s.recv(4096)
            key = "got_" + (got[9:12].decode("latin1") if got else "eof")
        except BlockingIOError:
            key = "open"
        except OSError as e:
            key = "err_" + type(e).__name__
        stats[key] = stats.get(key, 0) + 1
        s.close()


def attacks(kind, addr, dur, tmp):
    """Starts the attack; returns a stop function."""
    procs, threads, stats = [], [], {}
    url = f"http://{addr}/"
    kinds = ["slowloris", "slowread", "slowbody", "flood"] if kind == "all" else [kind]
    n = 400 if kind != "all" else 150
    for k in kinds:
        common = ["slowhttptest", "-c", str(n), "-r", "400", "-l", str(dur + 2), "-p", "3",
                  "-o", os.path.join(tmp, k)]
        if k == "slowloris":
            cmd = common + ["-H", "-i", "5", "-t", "GET", "-u", url, "-x", "24"]
        elif k == "slowread":
            cmd = common + ["-X", "-w", "512", "-y", "1024", "-n", "3", "-z", "32", "-u", url]
        elif k == "slowbody":
            cmd = common + ["-B", "-i", "5", "-s", "8192", "-t", "POST", "-u", url + "echo",
                            "-x", "24"]
        elif k == "flood":
            t = threading.Thread(target=flood, args=(addr, 1600, dur + 1, stats), daemon=True)
            t.start()
            threads.append(t)
            continue
        else:
            sys.exit(f"unknown attack {k}")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop():
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for t in threads:
            t.join(timeout=dur + 10)
        return stats
    return stop


def lua(kind, arg, path):
    with open(path, "w") as f:
        if kind == "pipe":
            req = "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" * int(arg)
            f.write(f'init = function() req = "{req}" end\nrequest = function() return req end\n')
        else:
            f.write(f'wrk.method = "POST"\nwrk.body = string.rep("a", {int(arg)})\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')


def to_ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def client(case, addr, dur, tmp):
    """Runs the case's client; returns a dict of what it saw."""
    kind, *args = case.split(":")
    url = f"http://{addr}/"
    r = {"case": case}
    if kind in ("ka", "pipe", "post"):
        cmd = ["wrk", "-t1", f"-c{args[0]}", f"-d{dur}s", "--timeout", "5s", "--latency"]
        if kind != "ka":
            script = os.path.join(tmp, f"{kind}.lua")
            lua(kind, args[1], script)
            cmd += ["-s", script]
            url += "echo" if kind == "post" else ""
        out = subprocess.run(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=dur + 60).stdout
        r["raw"] = out
        r["answers"] = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        r["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        r["non2xx"] = int(m.group(1)) if m else 0
        for p in ("50", "99"):
            m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s|m)\b", out)
            r[f"p{p}"] = to_ms(*m.groups()) if m else None
        m = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s|m)\b", out)
        r["max"] = to_ms(*m.groups()) if m else None
    elif kind in ("h2", "h2post"):
        cmd = ["h2load", "--h1", f"-c{args[0]}", "-m1", f"-n{args[1]}", "-T", "5", "-N", "5"]
        if kind == "h2post":
            body = os.path.join(tmp, "body")
            with open(body, "wb") as f:
                f.write(b"a" * int(args[2]))
            cmd += ["-d", body]
            url += "echo"
        t0 = time.time()
        out = subprocess.run(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=120).stdout
        r["raw"] = out
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        tot, started, done, ok, failed, errored, tmo = map(int, m.groups())
        r["answers"] = done
        r["errors"] = {"failed": failed, "errored": errored, "timeout": tmo,
                       "not_done": tot - done}
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        r["non2xx"] = sum(map(int, m.groups()[1:])) if m else 0
        r["two_xx"] = int(m.group(1)) if m else 0
        m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
        r["max"] = to_ms(m.group(3), m.group(4)) if m else None
        r["p50"] = r["p99"] = None
        r["elapsed"] = time.time() - t0
    else:
        sys.exit(f"unknown case {case}")
    return r


def one(server, case, attack, dur, rss, every):
    known = servers()
    name, _, cmdline = server.partition("=")
    if cmdline:
        words, env = shlex.split(cmdline), {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            k, _, v = words.pop(0).partition("=")
            env[k] = v
        spec = (words, env)
    else:
        spec = known[name]
    with tempfile.TemporaryDirectory(prefix="load21-") as tmp:
        proc, addr = start(*spec, os.path.join(tmp, "out"))
        sampler = Sampler(proc.pid, every)
        sampler.start()
        stop_attack = None
        if attack != "none":
            stop_attack = attacks(attack, addr, dur, tmp)
            time.sleep(0.5)
        t0 = time.time()
        res = client(case, addr, dur, tmp)
        t1 = time.time()
        astats = stop_attack() if stop_attack else {}
        res["rps"] = res["answers"] / res.pop("elapsed", t1 - t0)
        ts = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            res["stop_timeout"] = True
        res["stop_s"] = time.time() - ts
        sampler.done = True
        with open(os.path.join(tmp, "out")) as f:
            out = f.read()
        rep = None
        for line in out.splitlines():
            if line.startswith("{"):
                rep = json.loads(line)
        res["report"] = {k: v for k, v in (rep or {}).items() if k != "loops"}
        res["attack"] = attack
        res["attack_stats"] = astats
        res["server"] = name
        res["rss"] = [r for _, r in sampler.samples]
        res["exit"] = proc.returncode
    return res


def summary(r):
    rep = r["report"]
    errs = {k: v for k, v in r["errors"].items() if v}
    rss = r["rss"]
    s = (f"{r['server']:>8} {r['case']:>18} {r['attack']:>9}: {r['rps']:9.0f}/s "
         f"p50 {r['p50'] or 0:7.2f} p99 {r['p99'] or 0:7.2f} max {r['max'] or 0:8.2f} ms "
         f"answers {r['answers']} non2xx {r['non2xx']} err {errs or 0}")
    if rep:
        s += (f" | served {rep.get('served')} rej {rep.get('rejected')} ref {rep.get('refused')}"
              f" connref {rep.get('connections_refused')} evict {rep.get('connections_evicted')}"
              f" undeliv {rep.get('undelivered')} leaked {rep.get('leaked')}"
              f" drain {rep.get('drain_ms')} hw {rep.get('buffered_high_water')}")
    if rss:
        s += f" | rss {rss[0]}/{max(rss)}/{rss[-1]} KB"
    s += f" | stop {r['stop_s']:.2f}s exit {r['exit']}"
    if r["attack_stats"]:
        s += f" flood {r['attack_stats']}"
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("server")
    ap.add_argument("case")
    ap.add_argument("--attack", default="none")
    ap.add_argument("--dur", type=int, default=3)
    ap.add_argument("--rss-every", type=float, default=0.25)
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()
    r = one(o.server, o.case, o.attack, o.dur, True, o.rss_every)
    print(summary(r), flush=True)
    if o.json:
        r.pop("raw", None)
        print(json.dumps(r))


if __name__ == "__main__":
    main()
