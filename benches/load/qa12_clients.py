#!/usr/bin/env python3
"""qa12_clients: real HTTP clients against both stacks: curl with odd options, python
http.client, h11 as a strict response parser, ab, h2load --h1 and wrk with a Lua script. Each
line is one case and what each stack gave; the exit JSON totals at the end.
usage: qa12_clients.py [FILTER]"""
import http.client
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop  # noqa: E402

import h11  # pip install h11

HERE = os.path.dirname(os.path.abspath(__file__))


def curl(addr, *args):
    base = f"http://{addr[0]}:{addr[1]}"
    argv = ["curl", "-s", "-S", "--max-time", "5", "-o", "/dev/null",
            "-w", "%{http_code} %{size_download} %{num_connects}"]
    argv += [a.replace("BASE", base) for a in args]
    p = subprocess.run(argv, capture_output=True, text=True)
    return (p.stdout.strip() + (f" rc={p.returncode} {p.stderr.strip()[:60]}" if p.returncode else "")).strip()


CURL = [
    ("http1.0", ["--http1.0", "BASE/"]),
    ("http1.0-two", ["--http1.0", "BASE/", "BASE/"]),
    ("head-all", ["-I", "BASE/", "-I", "BASE/delay?ms=1", "-I", "BASE/healthz/live", "-I", "BASE/nope"]),
    ("trace", ["-X", "TRACE", "BASE/"]),
    ("options-star", ["-X", "OPTIONS", "--request-target", "*", "BASE/"]),
    ("expect-100", ["-H", "Expect: 100-continue", "--data-binary", "@/etc/hostname", "BASE/echo"]),
    ("expect-100-big", ["--data-binary", "@" + os.path.abspath(__file__), "-H", "Expect: 100-continue", "BASE/echo"]),
    ("expect-417", ["-H", "Expect: foo", "--data-binary", "x", "BASE/echo"]),
    ("chunked-upload", ["-H", "Transfer-Encoding: chunked", "--data-binary", "@" + os.path.abspath(__file__), "BASE/echo"]),
    ("h2c-upgrade", ["--http2", "BASE/", "BASE/"]),
    ("h2-prior", ["--http2-prior-knowledge", "BASE/"]),
    ("path-as-is", ["--path-as-is", "BASE/../../etc/passwd"]),
    ("abs-proxy", ["-x", "BASE", "http://example.com/"]),
    ("abs-proxy-userinfo", ["-x", "BASE", "http://u:p@example.com/"]),
    ("abs-proxy-ipv6", ["-x", "BASE", "http://[::1]:9/"]),
    ("host-mismatch", ["-H", "Host: other", "BASE/"]),
    ("ws-upgrade", ["-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                    "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "BASE/"]),
    ("range", ["-r", "0-1", "BASE/"]),
    ("if-none-match", ["-H", "If-None-Match: *", "BASE/"]),
    ("compressed", ["--compressed", "BASE/"]),
    ("max-body+1", ["--data-binary", "@/dev/zero", "--max-filesize", "1", "-H", "Content-Length: 1048577", "BASE/echo"]),
    ("keepalive-50", ["BASE/"] * 50),
]


def py_http_client(addr):
    out = []
    c = http.client.HTTPConnection(*addr, timeout=5)
    for method, path, body, headers in [
        ("GET", "/", None, {}),
        ("HEAD", "/", None, {}),
        ("HEAD", "/delay?ms=1", None, {}),
        ("POST", "/echo", b"abc", {}),
        ("POST", "/echo", iter([b"ab", b"c"]), {"Transfer-Encoding": "chunked"}),
        ("OPTIONS", "*", None, {}),
        ("TRACE", "/", None, {}),
        ("DELETE", "/", None, {}),
        ("GET", "/panic", None, {}),
        ("GET", "/", None, {}),
    ]:
        try:
            c.request(method, path, body=body, headers=headers,
                      encode_chunked=headers.get("Transfer-Encoding") == "chunked")
            r = c.getresponse()
            data = r.read()
            out.append(f"{method[:3]}{r.status}/{len(data)}")
        except Exception as e:
            out.append(f"{method}:{type(e).__name__}")
            c.close()
            c = http.client.HTTPConnection(*addr, timeout=5)
    c.close()
    return " ".join(out)


def h11_run(addr):
    """One connection, eight requests, every answer parsed by h11 (which raises on any protocol
    violation, including a body on a HEAD/204/304 answer or a bad content-length)."""
    s = socket.create_connection(addr)
    s.settimeout(5)
    conn = h11.Connection(h11.CLIENT)
    out = []
    for method, target, body in [
        ("GET", "/", b""), ("HEAD", "/", b""), ("POST", "/echo", b"x" * 70000), ("OPTIONS", "*", b""),
        ("HEAD", "/nope", b""), ("GET", "/delay?ms=5", b""), ("HEAD", "/panic", b""), ("GET", "/healthz/ready", b""),
    ]:
        headers = [("host", "x")]
        if body:
            headers.append(("content-length", str(len(body))))
        s.sendall(conn.send(h11.Request(method=method, target=target, headers=headers)))
        if body:
            s.sendall(conn.send(h11.Data(data=body)))
        s.sendall(conn.send(h11.EndOfMessage()))
        status, n = None, 0
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(s.recv(65536))
                continue
            if isinstance(ev, h11.InformationalResponse):
                continue
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                n += len(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                break
            elif isinstance(ev, h11.ConnectionClosed):
                break
        out.append(f"{method[:3]}{status}/{n}")
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            out.append("(closed)")
            break
        conn.start_next_cycle()
    s.close()
    return " ".join(out)


def tool(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    text = p.stdout + p.stderr
    keep = []
    for line in text.splitlines():
        low = line.lower()
        if any(k in low for k in ("complete requests", "failed requests", "non-2xx", "requests:", "status codes",
                                  "socket errors", "requests/sec", "finished in", "errored", "keep-alive")):
            keep.append(" ".join(line.split()))
    return "; ".join(keep) + (f" rc={p.returncode}" if p.returncode else "")


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else ""
    servers = {st: start(st) for st in ("mio", "hyper")}
    cases = [(f"curl {n}", lambda a, args=args: curl(a, *args)) for n, args in CURL]
    cases += [
        ("http.client", py_http_client),
        ("h11", h11_run),
        ("ab -k", lambda a: tool(["ab", "-q", "-k", "-n", "20000", "-c", "50", f"http://{a[0]}:{a[1]}/"])),
        ("ab post", lambda a: tool(["ab", "-q", "-n", "3000", "-c", "20", "-p", os.path.abspath(__file__),
                                    f"http://{a[0]}:{a[1]}/echo"])),
        ("h2load --h1 -m16", lambda a: tool(["h2load", "--h1", "-n", "40000", "-c", "20", "-m", "16",
                                            f"http://{a[0]}:{a[1]}/"])),
        ("wrk lua pipeline", lambda a: tool(["wrk", "-t1", "-c20", "-d3s", "-s",
                                             os.path.join(HERE, "qa12_mixed.lua"), f"http://{a[0]}:{a[1]}"])),
    ]
    for name, fn in cases:
        if flt not in name:
            continue
        got = {}
        for st, (_, addr) in servers.items():
            try:
                got[st] = fn(addr)
            except Exception as e:
                got[st] = f"FAILED {type(e).__name__}: {e}"
        mark = "  " if got["mio"] == got["hyper"] else "!="
        print(f"{mark} {name:22} mio: {got['mio']}\n{'':25}hyper: {got['hyper']}", flush=True)
    for st, (p, _) in servers.items():
        rep = stop(p)
        print(st, {k: rep[k] for k in ("served", "refused", "rejected", "aborted", "leaked", "panics")})


main()
