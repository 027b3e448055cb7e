#!/usr/bin/env python3
"""qa32_battery: round 32's held-out hostile-client battery against `serve`, both stacks side by
side. `conform`: every route x method, the error paths (HEAD included), smuggling mutations;
each case on its own connection, the bytes read by h11 plus qa32lib.strict's checks, the two
stacks compared (`!!` where they differ). `split`: the same cases cut at random points (a pause
between pieces), the answers compared with the unsplit ones. `linger`: answers that close the
connection (the routes' `connection: close`, a `400`, a `413` before the body, a bad head)
with the client still sending 4 MB behind its request, with and without an earlier request
that asked for an upgrade (`CONNECT`, `Upgrade`): the client must read its answer, then a FIN,
and its sending must not be reset (RFC 9112 9.6); round 32 found hyper resetting every one
that asked for an upgrade (QA client32-1, tests/probe_client_v32.rs). Bounded: one pass.
usage: BIN=target/release/reqguard-demo [ONLY=sm] qa32_battery.py conform|split|linger [FILTER] [SEED]
(ONLY=sm: the smuggling mutations alone)"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa32lib import exchange, start, stop, summary  # noqa: E402

NEXT = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
P = b"POST /echo HTTP/1.1\r\nhost: x\r\n"
CH = b"3\r\nabc\r\n0\r\n\r\n"


def cases():
    c = []
    routes = [b"/", b"/echo", b"/delay?ms=1", b"/panic", b"/nope", b"/healthz/live", b"/healthz/ready",
              b"*", b"http://x/", b"http://x/echo", b"http://x", b"HTTP://X:80/?a=b"]
    methods = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
               b"FOO", b"get", b"PRI"]
    for r in routes:
        for m in methods:
            body = b"content-length: 3\r\n\r\nabc" if m in (b"POST", b"PUT", b"PATCH") else b"\r\n"
            c.append((f"{m.decode()} {r.decode()}", m + b" " + r + b" HTTP/1.1\r\nhost: x\r\n" + body + NEXT))
            c.append((f"{m.decode()} {r.decode()} 1.0", m + b" " + r + b" HTTP/1.0\r\n" + body + NEXT))
            c.append((f"{m.decode()} {r.decode()} 1.0ka", m + b" " + r + b" HTTP/1.0\r\nconnection: keep-alive\r\n" + body + NEXT))
    for m in (b"GET", b"HEAD", b"POST"):
        h = m + b" "
        c += [
            (f"{m.decode()} 413", h + b"/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n" + NEXT),
            (f"{m.decode()} 413 chunked", h + b"/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n200000\r\n" + b"a" * 70000),
            (f"{m.decode()} 414", h + b"/" + b"a" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
            (f"{m.decode()} 431", h + b"/ HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 9000 + b"\r\n\r\n" + NEXT),
            (f"{m.decode()} 431 65 fields", h + b"/ HTTP/1.1\r\nhost: x\r\n" + b"x: a\r\n" * 65 + b"\r\n" + NEXT),
            (f"{m.decode()} 505", h + b"/ HTTP/2.0\r\nhost: x\r\n\r\n" + NEXT),
            (f"{m.decode()} 0.9", h + b"/ HTTP/0.9\r\n\r\n" + NEXT),
            (f"{m.decode()} nover", h + b"/\r\n\r\n" + NEXT),
            (f"{m.decode()} 400 nohost", h + b"/ HTTP/1.1\r\n\r\n" + NEXT),
            (f"{m.decode()} 400 2host", h + b"/ HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n" + NEXT),
            (f"{m.decode()} 400 host sp", h + b"/ HTTP/1.1\r\nhost: a b\r\n\r\n" + NEXT),
            (f"{m.decode()} abs+host differ", h + b"http://a/ HTTP/1.1\r\nhost: b\r\n\r\n" + NEXT),
            (f"{m.decode()} abs https", h + b"https://a/ HTTP/1.1\r\nhost: a\r\n\r\n" + NEXT),
            (f"{m.decode()} abs ftp", h + b"ftp://a/ HTTP/1.1\r\nhost: a\r\n\r\n" + NEXT),
            (f"{m.decode()} close", h + b"/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + NEXT),
            (f"{m.decode()} expect", h + b"/echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
            (f"{m.decode()} expect nobody", h + b"/ HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n" + NEXT),
            (f"{m.decode()} expect 413", h + b"/echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2000000\r\n\r\n"),
            (f"{m.decode()} upgrade", h + b"/ HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n" + NEXT),
            (f"{m.decode()} h2c", h + b"/ HTTP/1.1\r\nhost: x\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n" + NEXT),
        ]
    c.append(("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    # smuggling mutations
    sm = [
        ("cl+te", P + b"content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n" + CH + NEXT),
        ("te+cl", P + b"transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n" + CH + NEXT),
        ("cl dup same", P + b"content-length: 3\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("cl dup diff", P + b"content-length: 3\r\ncontent-length: 4\r\n\r\nabcd" + NEXT),
        ("cl list same", P + b"content-length: 3, 3\r\n\r\nabc" + NEXT),
        ("cl neg", P + b"content-length: -3\r\n\r\nabc" + NEXT),
        ("cl plus", P + b"content-length: +3\r\n\r\nabc" + NEXT),
        ("cl hex", P + b"content-length: 0x3\r\n\r\nabc" + NEXT),
        ("cl huge", P + b"content-length: 99999999999999999999999999\r\n\r\nabc"),
        ("cl u64max", P + b"content-length: 18446744073709551615\r\n\r\nabc"),
        ("cl u64+1", P + b"content-length: 18446744073709551616\r\n\r\nabc"),
        ("cl space in", P + b"content-length: 1 0\r\n\r\nabc"),
        ("cl ws before colon", P + b"content-length : 3\r\n\r\nabc" + NEXT),
        ("cl tab before colon", P + b"content-length\t: 3\r\n\r\nabc" + NEXT),
        ("te ws before colon", P + b"transfer-encoding : chunked\r\n\r\n" + CH + NEXT),
        ("te upper", P + b"Transfer-Encoding: CHUNKED\r\n\r\n" + CH + NEXT),
        ("te twice", P + b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n" + CH + NEXT),
        ("te chunked,chunked", P + b"transfer-encoding: chunked, chunked\r\n\r\n" + CH + NEXT),
        ("te gzip,chunked", P + b"transfer-encoding: gzip, chunked\r\n\r\n" + CH + NEXT),
        ("te chunked,gzip", P + b"transfer-encoding: chunked, gzip\r\n\r\n" + CH + NEXT),
        ("te xchunked", P + b"transfer-encoding: xchunked\r\n\r\n" + CH + NEXT),
        ("te chunked-", P + b"transfer-encoding: chunked-\r\n\r\n" + CH + NEXT),
        ("te tab", P + b"transfer-encoding:\tchunked\r\n\r\n" + CH + NEXT),
        ("te fold", P + b"transfer-encoding: gzip,\r\n chunked\r\n\r\n" + CH + NEXT),
        ("te 1.0", b"POST /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n" + CH + NEXT),
        ("fold host", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n" + NEXT),
        ("fold first", b"GET / HTTP/1.1\r\n host: x\r\n\r\n" + NEXT),
        ("bare cr in value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\rc\r\n\r\n" + NEXT),
        ("bare cr line end", b"GET / HTTP/1.1\rhost: x\r\n\r\n" + NEXT),
        ("bare cr head end", b"GET / HTTP/1.1\r\nhost: x\r\r\n" + NEXT),
        ("bare lf all", b"GET / HTTP/1.1\nhost: x\n\n" + NEXT),
        ("bare lf mixed", b"GET / HTTP/1.1\r\nhost: x\n\r\n" + NEXT),
        ("nul name", b"GET / HTTP/1.1\r\nhost: x\r\nx\x00a: b\r\n\r\n" + NEXT),
        ("nul value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\x00c\r\n\r\n" + NEXT),
        ("nul target", b"GET /\x00 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("ctl target", b"GET /\x01 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("del target", b"GET /\x7f HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("tab target", b"GET /\ta HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("ctl name", b"GET / HTTP/1.1\r\nhost: x\r\nx\x01: b\r\n\r\n" + NEXT),
        ("ctl value", b"GET / HTTP/1.1\r\nhost: x\r\nx: b\x01c\r\n\r\n" + NEXT),
        ("esc value", b"GET / HTTP/1.1\r\nhost: x\r\nx: \x1b[31m\r\n\r\n" + NEXT),
        ("empty name", b"GET / HTTP/1.1\r\nhost: x\r\n: b\r\n\r\n" + NEXT),
        ("no colon", b"GET / HTTP/1.1\r\nhost: x\r\nxyz\r\n\r\n" + NEXT),
        ("two spaces rl", b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("trailing space rl", b"GET / HTTP/1.1 \r\nhost: x\r\n\r\n" + NEXT),
        ("tab sep rl", b"GET\t/\tHTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("leading crlf", b"\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("leading lf", b"\n\nGET / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("leading sp", b" GET / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("chunk ext", P + b"transfer-encoding: chunked\r\n\r\n3;a=b;c=\"d\"\r\nabc\r\n0;e\r\n\r\n" + NEXT),
        ("chunk ext bare cr", P + b"transfer-encoding: chunked\r\n\r\n3;a=b\rc\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk ext lf", P + b"transfer-encoding: chunked\r\n\r\n3;a\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk neg", P + b"transfer-encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk plus", P + b"transfer-encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk 0x", P + b"transfer-encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk huge", P + b"transfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ("chunk 16f", P + b"transfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ("chunk short data", P + b"transfer-encoding: chunked\r\n\r\n3\r\nab\r\n0\r\n\r\n" + NEXT),
        ("chunk long data", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n" + NEXT),
        ("chunk no last crlf", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + NEXT),
        ("trailer", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: y\r\n\r\n" + NEXT),
        ("trailer cl", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ncontent-length: 50\r\n\r\n" + NEXT),
        ("trailer te", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ntransfer-encoding: chunked\r\n\r\n" + NEXT),
        ("trailer no colon", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nxy\r\n\r\n" + NEXT),
        ("trailer fold", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: y\r\n z\r\n\r\n" + NEXT),
        ("trailer ws colon", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx : y\r\n\r\n" + NEXT),
        ("trailer nul", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: \x00\r\n\r\n" + NEXT),
        ("trailer bare cr", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: a\rb\r\n\r\n" + NEXT),
        ("get with body", b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("get chunked body", b"GET / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + CH + NEXT),
        ("head with body", b"HEAD / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("delete body", b"DELETE / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("options body", b"OPTIONS * HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("post no length", b"POST /echo HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("post 1.0 no length", b"POST /echo HTTP/1.0\r\n\r\nabc"),
        ("host empty 1.1", b"GET / HTTP/1.1\r\nhost:\r\n\r\n" + NEXT),
        ("host empty 1.0", b"GET / HTTP/1.0\r\nhost:\r\n\r\n"),
        ("host port empty", b"GET / HTTP/1.1\r\nhost: x:\r\n\r\n" + NEXT),
        ("host port big", b"GET / HTTP/1.1\r\nhost: x:99999\r\n\r\n" + NEXT),
        ("host userinfo", b"GET / HTTP/1.1\r\nhost: u@x\r\n\r\n" + NEXT),
        ("host path", b"GET / HTTP/1.1\r\nhost: x/y\r\n\r\n" + NEXT),
        ("host pct", b"GET / HTTP/1.1\r\nhost: x%20y\r\n\r\n" + NEXT),
        ("host comma", b"GET / HTTP/1.1\r\nhost: x,y\r\n\r\n" + NEXT),
        ("host ipv6", b"GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n" + NEXT),
        ("host 1.0 two", b"GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n"),
        ("abs no host hdr", b"GET http://x/ HTTP/1.1\r\n\r\n" + NEXT),
        ("abs empty host", b"GET http:/// HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("abs userinfo", b"GET http://u:p@x/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("abs query only", b"GET http://x?a=b HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("authority-form GET", b"GET x:80 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("CONNECT ok", b"CONNECT x:80 HTTP/1.1\r\nhost: x:80\r\n\r\n" + NEXT),
        ("ver lower", b"GET / http/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("ver 1.2", b"GET / HTTP/1.2\r\nhost: x\r\n\r\n" + NEXT),
        ("ver 1.10", b"GET / HTTP/1.10\r\nhost: x\r\n\r\n" + NEXT),
        ("ver 3.0", b"GET / HTTP/3.0\r\nhost: x\r\n\r\n" + NEXT),
        ("ver 11", b"GET / HTTP/11\r\nhost: x\r\n\r\n" + NEXT),
        ("pct in path", b"GET /%65cho HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("dot segs", b"GET /./nope/../ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("double slash", b"GET // HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("query only", b"GET ?a HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("fragment", b"GET /#x HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("conn close 1.0 ka", b"GET / HTTP/1.0\r\nconnection: keep-alive, close\r\n\r\n" + NEXT),
        ("conn ka twice", b"GET / HTTP/1.0\r\nconnection: keep-alive\r\nconnection: keep-alive\r\n\r\n" + NEXT),
        ("pipe after close", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + NEXT + NEXT),
        ("echo close body", P + b"connection: close\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("echo empty", P + b"content-length: 0\r\n\r\n" + NEXT),
        ("echo chunk 0", P + b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n" + NEXT),
        ("echo crlf body", P + b"content-length: 4\r\n\r\n\r\n\r\n" + NEXT),
        ("echo http body", P + b"content-length: 27\r\n\r\nHTTP/1.1 200 OK\r\nx: y\r\n\r\n" + NEXT),
        ("huge header count 64", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x: a\r\n" * 63 + b"\r\n" + NEXT),
        ("max_head exact", b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * (8192 - 35) + b"\r\n\r\n" + NEXT),
    ]
    if os.environ.get("ONLY") == "sm":
        return sm
    c += sm
    return c


def run_stack(stack, todo, pieces_of=None, gap=0.0):
    proc, addr = start(stack)
    res = {}
    try:
        for name, data in todo:
            pieces = pieces_of(name, data) if pieces_of else None
            raw, end = exchange(addr, data, pieces=pieces, gap=gap, wait=0.4 if gap else 0.3)
            res[name] = summary(raw, end, data)
    finally:
        rep = stop(proc)
    return res, rep


LINGER_FIRST = [
    ("", b""),
    ("after CONNECT", b"CONNECT x:80 HTTP/1.1\r\nhost: x:80\r\n\r\n"),
    ("after Upgrade", b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"),
]
LINGER_LAST = [
    ("GET close", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    ("GET close+upgrade", b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade, close\r\n\r\n"),
    ("413 upload", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 9000000\r\n\r\n"),
    ("413 upload+upgrade", b"POST /echo HTTP/1.1\r\nhost: x\r\nupgrade: a\r\nconnection: upgrade\r\ncontent-length: 9000000\r\n\r\n"),
    ("400 no host", b"GET / HTTP/1.1\r\n\r\n"),
    ("400 bad head", b"GET / HTTP/1.1\r\nhost: x\r\nx\x00: y\r\n\r\n"),
    ("400 CONNECT /", b"CONNECT / HTTP/1.1\r\nhost: x\r\n\r\n"),
]


def linger(stack, more=4_000_000):
    """Each closing answer with `more` bytes sent behind it: (answers read, how the
    connection ended, whether the sender was reset)."""
    import threading

    proc, addr = start(stack)
    out = []
    try:
        for fname, first in LINGER_FIRST:
            for lname, last in LINGER_LAST:
                s = __import__("socket").create_connection(addr)
                s.settimeout(10)
                res = {}

                def send(s=s, data=first + last + b"m" * more):
                    try:
                        s.sendall(data)
                        res["send"] = "sent"
                    except OSError as e:
                        res["send"] = type(e).__name__

                t = threading.Thread(target=send)
                t.start()
                got, end = b"", "FIN"
                try:
                    while True:
                        c = s.recv(1 << 16)
                        if not c:
                            break
                        got += c
                except OSError as e:
                    end = type(e).__name__
                t.join()
                s.close()
                data = first + last
                answers, bad = summary(got, "EOF", data)
                out.append((f"{fname:14} {lname:18}", answers.split(" | ")[0], end, res.get("send"), bad))
    finally:
        rep = stop(proc)
    return out, rep


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "conform"
    if mode == "linger":
        for stack in ("mio", "hyper"):
            out, rep = linger(stack)
            nbad = 0
            for name, answers, end, sent, bad in out:
                flag = "  " if end == "FIN" and sent == "sent" and not bad else "!!"
                nbad += flag == "!!"
                print(f"{flag} {stack:5} {name} {answers:12} then {end:22} sender {sent} {' '.join(bad)}")
            print(f"# {stack}: {len(out)} cases, {nbad} reset or bad; leaked {rep.get('leaked')}")
        return
    filt = sys.argv[2] if len(sys.argv) > 2 else ""
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    todo = [(n, d) for n, d in cases() if filt in n]
    out = {}
    for stack in ("mio", "hyper"):
        base, rep = run_stack(stack, todo)
        out[stack] = base
        print(f"# {stack} report: served {rep.get('served')} rejected {rep.get('rejected')} leaked {rep.get('leaked')} panics {rep.get('panics')}")
        if mode == "split":
            rng = random.Random(seed)
            cut = {n: sorted(rng.sample(range(1, len(d)), min(len(d) - 1, rng.randint(1, 4)))) for n, d in todo}
            sp, rep = run_stack(stack, todo, pieces_of=lambda n, d: cut[n], gap=0.05)
            print(f"# {stack} split report: served {rep.get('served')} leaked {rep.get('leaked')}")
            for n, _ in todo:
                if sp[n][0] != base[n][0]:
                    print(f"SPLIT {stack} {n!r} at {cut[n]}: whole {base[n][0]} split {sp[n][0]}")
    nbad = ndiff = 0
    for n, _ in todo:
        m, h = out["mio"][n], out["hyper"][n]
        # hyper answers HTTP/1.0 requests `HTTP/1.0` (docs/hyper.md, differences that stay).
        flag = "!!" if m[0] != h[0].replace("/1.0", "") else "  "
        ndiff += flag == "!!"
        for stack, r in (("mio", m), ("hyper", h)):
            for b in r[1]:
                nbad += 1
                print(f"BAD {stack} {n!r}: {b}   [{r[0]}]")
        if mode == "conform" and (flag == "!!" or os.environ.get("ALL")):
            print(f"{flag} {n:40} mio {m[0]:30} hyper {h[0]}")
    print(f"# {len(todo)} cases, {ndiff} differ, {nbad} complaints")


if __name__ == "__main__":
    main()
