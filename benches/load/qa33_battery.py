#!/usr/bin/env python3
"""qa33_battery: round 33's additions to round 32's hostile-client battery (qa32_battery.py,
qa32lib.py: h11 plus the checks h11 does not make), both stacks side by side (`!!` where they
differ, `BAD` where a strict reading fails). Modes, each bounded (one pass):

  conform   cases round 32 lacked: Expect with an unknown value, `100-continue` in HTTP/1.0 (RFC
            9110 10.1.1: MUST ignore), `te: trailers`, codings the server does not decode,
            whitespace before the colon of any field (RFC 9112 5.1: MUST 400), obs-fold and bare
            CR in more places, duplicate and list-form lengths, `*` for methods other than
            OPTIONS, HTTP/1.0 OPTIONS *, thousands of tiny fields within max_head, exactly the
            field-count limit and one past it, requests after `connection: close` in its
            variants, long chunk extensions (under and past max_chunk_extensions), a trailer
            section past max_trailers, leading zeros everywhere a number is, and
            `content-length` of HEAD equal to GET's (RFC 9110 9.3.2)
  every     pipelined requests split in two at every byte (a pause between the pieces, the
            client's FIN after): the answers must equal the unsplit ones (but for a `100
            Continue` a head that arrives without its body earns)
  rstbody   clients that reset mid-body (Content-Length and chunked), mid-head and while their
            request is in its handler, beside clients that must all be served; the exit JSON
            must say leaked 0
  halfopen  hundreds of clients that send part of a head then shut down their write side,
            and silent clients past max_connections (evicted without an answer: gap (a) of
            round 33), beside a client that must be served; counted against the exit JSON
  halfclose --half-close with requests pipelined behind a deferred one and behind
            back-pressure, then the FIN: every whole request answered (gap (b) of round 33)

usage: BIN=target/release/reqguard-demo qa33_battery.py conform|every|rstbody|halfopen|halfclose"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa32lib import exchange, start, stop, strict, summary  # noqa: E402
from qa32_battery import run_stack  # noqa: E402

NEXT = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
P = b"POST /echo HTTP/1.1\r\nhost: x\r\n"
TE = P + b"transfer-encoding: chunked\r\n"


def cases():
    c = [
        # Expect (RFC 9110 10.1.1)
        ("expect unknown", b"GET / HTTP/1.1\r\nhost: x\r\nexpect: foo\r\n\r\n" + NEXT),
        ("expect unknown post", P + b"expect: 200-ok\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("expect upper", P + b"Expect: 100-Continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("expect 1.0", b"POST /echo HTTP/1.0\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc"),
        ("expect 1.0 ka", b"POST /echo HTTP/1.0\r\nconnection: keep-alive\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("expect cl 0", P + b"expect: 100-continue\r\ncontent-length: 0\r\n\r\n" + NEXT),
        ("expect twice", P + b"expect: 100-continue\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("expect list", P + b"expect: 100-continue, foo\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("expect chunked", TE + b"expect: 100-continue\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
        # TE request field (RFC 9110 10.1.4), codings
        ("te trailers", b"GET / HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: te\r\n\r\n" + NEXT),
        ("te field gzip", b"GET / HTTP/1.1\r\nhost: x\r\nte: gzip;q=0.5\r\n\r\n" + NEXT),
        ("coding identity", P + b"transfer-encoding: identity\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("coding identity,chunked", P + b"transfer-encoding: identity, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("coding chunked;q", P + b"transfer-encoding: chunked;q=1\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("coding empty", P + b"transfer-encoding: \r\n\r\n" + NEXT),
        ("coding , chunked", P + b"transfer-encoding: , chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
        # whitespace before the colon (RFC 9112 5.1: MUST 400), obs-fold, bare CR, CTLs
        ("ws colon host", b"GET / HTTP/1.1\r\nhost : x\r\n\r\n" + NEXT),
        ("ws colon other", b"GET / HTTP/1.1\r\nhost: x\r\nx-a : b\r\n\r\n" + NEXT),
        ("tab colon other", b"GET / HTTP/1.1\r\nhost: x\r\nx-a\t: b\r\n\r\n" + NEXT),
        ("ws colon connection", b"GET / HTTP/1.1\r\nhost: x\r\nconnection : close\r\n\r\n" + NEXT),
        ("ws colon expect", P + b"expect : 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("fold cl", P + b"content-length:\r\n 3\r\n\r\nabc" + NEXT),
        ("fold host value", b"GET / HTTP/1.1\r\nhost:\r\n x\r\n\r\n" + NEXT),
        ("fold tab", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n\tc\r\n\r\n" + NEXT),
        ("fold last", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n \r\n\r\n" + NEXT),
        ("bare cr in name", b"GET / HTTP/1.1\r\nhost: x\r\nx\ra: b\r\n\r\n" + NEXT),
        ("bare cr in target", b"GET /a\rb HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("bare cr before lf lf", b"GET / HTTP/1.1\r\nhost: x\r\n\r\r\n" + NEXT),
        ("bare lf in value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\nc\r\n\r\n" + NEXT),
        ("lf only pipeline", b"GET / HTTP/1.1\nhost: x\n\nGET / HTTP/1.1\nhost: x\n\n"),
        ("vt in value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\x0bc\r\n\r\n" + NEXT),
        ("ff in value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\x0cc\r\n\r\n" + NEXT),
        ("obs-text value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: \xe9\xff\r\n\r\n" + NEXT),
        ("obs-text name", b"GET / HTTP/1.1\r\nhost: x\r\nx-\xe9: b\r\n\r\n" + NEXT),
        ("sp in name", b"GET / HTTP/1.1\r\nhost: x\r\nx a: b\r\n\r\n" + NEXT),
        ("colon in name", b"GET / HTTP/1.1\r\nhost: x\r\n:x: b\r\n\r\n" + NEXT),
        # lengths
        ("cl dup same case", P + b"content-length: 3\r\nContent-Length: 3\r\n\r\nabc" + NEXT),
        ("cl dup 3 times", P + b"content-length: 3\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("cl dup 0 and 3", P + b"content-length: 0\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
        ("cl dup empty", P + b"content-length: 3\r\ncontent-length:\r\n\r\nabc" + NEXT),
        ("cl list diff", P + b"content-length: 3, 4\r\n\r\nabcd" + NEXT),
        ("cl list empty elt", P + b"content-length: 3,\r\n\r\nabc" + NEXT),
        ("cl leading zeros", P + b"content-length: 0003\r\n\r\nabc" + NEXT),
        ("cl many zeros", P + b"content-length: " + b"0" * 40 + b"3\r\n\r\nabc" + NEXT),
        ("cl trailing ws", P + b"content-length: 3 \r\n\r\nabc" + NEXT),
        ("cl tab value", P + b"content-length:\t3\r\n\r\nabc" + NEXT),
        ("cl empty", P + b"content-length:\r\n\r\n" + NEXT),
        ("cl 1.0 te", b"POST /echo HTTP/1.0\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\nabc"),
        ("chunk zeros", TE + b"\r\n" + b"0" * 30 + b"3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk upper hex", TE + b"\r\nA\r\n0123456789\r\n0\r\n\r\n" + NEXT),
        ("chunk last 000", TE + b"\r\n3\r\nabc\r\n000\r\n\r\n" + NEXT),
        ("chunk size ws", TE + b"\r\n3\t\r\nabc\r\n0\r\n\r\n" + NEXT),
        # chunk extensions (max_chunk_extensions 16 KiB) and trailers (max_trailers 8 KiB)
        ("chunk ext 7k", TE + b"\r\n3;a=" + b"b" * 7000 + b"\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk ext 20k one", TE + b"\r\n3;a=" + b"b" * 20000 + b"\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk ext 20k many", TE + b"\r\n" + b"".join(b"1;a=" + b"b" * 1000 + b"\r\nx\r\n" for _ in range(20)) + b"0\r\n\r\n" + NEXT),
        ("chunk ext quoted", TE + b"\r\n3;a=\"b\\\"c\"\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk ext quoted ctl", TE + b"\r\n3;a=\"b\x01c\"\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("chunk ext many names", TE + b"\r\n3" + b";a" * 2000 + b"\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("trailers 9k", TE + b"\r\n3\r\nabc\r\n0\r\nx: " + b"y" * 9000 + b"\r\n\r\n" + NEXT),
        ("trailers many", TE + b"\r\n3\r\nabc\r\n0\r\n" + b"t: v\r\n" * 100 + b"\r\n" + NEXT),
        # fields: counts and sizes (64 fields, max_head 8 KiB)
        ("tiny fields 2000", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"a:\r\n" * 2000 + b"\r\n" + NEXT),
        ("fields 64 empty", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"a:\r\n" * 63 + b"\r\n" + NEXT),
        ("fields 65 empty", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"a:\r\n" * 64 + b"\r\n" + NEXT),
        ("fields 64 post", P + b"content-length: 3\r\n" + b"a:\r\n" * 62 + b"\r\nabc" + NEXT),
        ("fields 65 post", P + b"content-length: 3\r\n" + b"a:\r\n" * 63 + b"\r\nabc" + NEXT),
        ("trailers 65", TE + b"\r\n3\r\nabc\r\n0\r\n" + b"t: v\r\n" * 65 + b"\r\n" + NEXT),
        ("empty value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a:\r\n\r\n" + NEXT),
        ("long name", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"n" * 8000 + b": v\r\n\r\n" + NEXT),
        # targets and methods
        ("GET *", b"GET * HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("HEAD *", b"HEAD * HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("POST *", b"POST * HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n" + NEXT),
        ("OPTIONS * 1.0", b"OPTIONS * HTTP/1.0\r\n\r\n"),
        ("OPTIONS *x", b"OPTIONS *x HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("OPTIONS /", b"OPTIONS / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("OPTIONS http://x", b"OPTIONS http://x HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("method 20", b"ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("method token !", b"G!T / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("method ctl", b"G\x01T / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("target 8k ok", b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        # connection: close and what follows it (RFC 9112 9.6: MUST NOT process further requests)
        ("close upper", b"GET / HTTP/1.1\r\nhost: x\r\nConnection: CLOSE\r\n\r\n" + NEXT),
        ("close list", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo, close\r\n\r\n" + NEXT),
        ("close 2 fields", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo\r\nconnection: close\r\n\r\n" + NEXT),
        ("close then post", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + P + b"content-length: 3\r\n\r\nabc"),
        ("close then garbage", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n\x00\x01\x02garbage\r\n\r\n"),
        ("close on echo then 2", P + b"connection: close\r\ncontent-length: 3\r\n\r\nabc" + NEXT + NEXT),
        ("close on head", b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + NEXT),
        ("close on 1.0 after ka", b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n" + NEXT),
        ("close token substring", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: closed\r\n\r\n" + NEXT),
        ("keep-alive 1.1", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n" + NEXT),
        # HEAD
        ("head cl body 0", b"HEAD / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n" + NEXT),
        ("head chunked body", b"HEAD / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
        ("head delay", b"HEAD /delay?ms=5 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("head panic", b"HEAD /panic HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
        ("head 413", b"HEAD /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5000000\r\n\r\n"),
    ]
    return c


def head_lengths(addr):
    """(GET's content-length, HEAD's) for `/`, `/nope` and `/delay?ms=1`: RFC 9110 9.3.2 says a
    HEAD answer's fields are those of the GET's (content-length SHOULD be the same)."""
    out = []
    for path in (b"/", b"/nope", b"/delay?ms=1", b"/panic"):
        lengths = []
        for m in (b"GET", b"HEAD"):
            raw, end = exchange(addr, m + b" " + path + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", wait=2)
            head = raw.split(b"\r\n\r\n")[0].lower()
            cl = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n") if ln.startswith(b"content-length:")]
            lengths.append(cl[0].decode() if cl else None)
        out.append((path.decode(), lengths[0], lengths[1]))
    return out


def conform():
    todo = cases()
    out = {}
    heads = {}
    for stack in ("mio", "hyper"):
        proc, addr = start(stack)
        try:
            heads[stack] = head_lengths(addr)
        finally:
            stop(proc)
        base, rep = run_stack(stack, todo)
        out[stack] = base
        print(f"# {stack} report: served {rep.get('served')} rejected {rep.get('rejected')} leaked {rep.get('leaked')} panics {rep.get('panics')}")
    nbad = ndiff = 0
    for stack in ("mio", "hyper"):
        for path, get, head in heads[stack]:
            flag = "  " if get == head and get is not None else "!!"
            nbad += flag == "!!"
            print(f"{flag} {stack:5} HEAD {path:12} content-length {head} (GET {get})")
    for n, _ in todo:
        m, h = out["mio"][n], out["hyper"][n]
        flag = "!!" if m[0] != h[0].replace("/1.0", "") else "  "
        ndiff += flag == "!!"
        for stack, r in (("mio", m), ("hyper", h)):
            for b in r[1]:
                nbad += 1
                print(f"BAD {stack} {n!r}: {b}   [{r[0]}]")
        print(f"{flag} {n:28} mio {m[0]:34} hyper {h[0]}")
    print(f"# {len(todo)} cases, {ndiff} differ, {nbad} complaints")


PIPELINES = [
    ("get get", NEXT + NEXT),
    ("post cl + get", P + b"content-length: 5\r\n\r\nhello" + NEXT),
    ("chunked + head", TE + b"\r\n3;x=y\r\nabc\r\n0\r\nt: v\r\n\r\nHEAD / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("expect + get", P + b"expect: 100-continue\r\ncontent-length: 2\r\n\r\nhi" + NEXT),
    ("crlf lead + abs", b"\r\n\r\nGET http://x/echo HTTP/1.1\r\nhost: x\r\n\r\nGET /nope HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("bad after good", NEXT + b"GET / HTTP/1.1\r\nhost: x\r\nx\x00: y\r\n\r\n"),
    ("close mid", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + NEXT),
]


def every():
    """Every pipeline split in two at each byte, the FIN after (the answers come at once)."""
    for stack in ("mio", "hyper"):
        proc, addr = start(stack)
        nsplit = ndiff = nbad = 0
        try:
            for name, data in PIPELINES:
                raw, end = exchange(addr, data, half=True, wait=3)
                whole, bad = summary(raw, end, data)
                for b in bad:
                    nbad += 1
                    print(f"BAD {stack} {name!r} whole: {b}")
                for k in range(1, len(data)):
                    raw, end = exchange(addr, data, pieces=[k], gap=0.005, half=True, wait=3)
                    got, bad = summary(raw, end, data)
                    nsplit += 1
                    # A `100 Continue` comes when the head arrives without its body (RFC 9110
                    # 10.1.1): a split after the head earns it, the whole request does not.
                    if got.replace("100 ", "") != whole.replace("100 ", "") or bad:
                        ndiff += 1
                        if ndiff <= 20:
                            print(f"SPLIT {stack} {name!r} at {k}: whole {whole} split {got} {bad}")
        finally:
            rep = stop(proc)
        print(f"# {stack}: {nsplit} splits of {len(PIPELINES)} pipelines, {ndiff} differ, {nbad} bad; "
              f"served {rep.get('served')} rejected {rep.get('rejected')} leaked {rep.get('leaked')}")


def rst(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


RESETS = {
    "mid-body cl": P + b"content-length: 100000\r\n\r\n" + b"a" * 50000,
    "mid-body chunked": TE + b"\r\n" + b"400\r\n" + b"b" * 1024 + b"\r\n" + b"400\r\n" + b"c" * 500,
    "mid-head": b"GET / HTTP/1.1\r\nhost: x\r\nx-a: ",
    "in handler": b"GET /delay?ms=300 HTTP/1.1\r\nhost: x\r\n\r\n",
    "after 100": P + b"expect: 100-continue\r\ncontent-length: 10\r\n\r\n",
    "pipelined": NEXT * 50 + P + b"content-length: 9\r\n\r\nabc",
}


def rstbody(rounds=150, good_per=5):
    for stack in ("mio", "hyper"):
        for extra in ((), ("--half-close",)):
            proc, addr = start(stack, extra=extra)
            bad, good = [], [0]

            def hostile(i):
                for name, data in RESETS.items():
                    try:
                        s = socket.create_connection(addr)
                        s.sendall(data)
                        if name == "after 100":
                            s.settimeout(5)
                            s.recv(100)
                        rst(s)
                    except OSError as e:
                        bad.append(f"{name}: {e}")

            def polite(i):
                for _ in range(good_per):
                    raw, end = exchange(addr, NEXT + P + b"content-length: 3\r\nconnection: close\r\n\r\nabc", half=False, wait=5)
                    got, b = summary(raw, end, NEXT + P)
                    if got.split(" | ")[0] != "200 200c" or b:
                        bad.append(f"polite: {got} {b}")
                    else:
                        good[0] += 1

            ts = [threading.Thread(target=hostile, args=(i,)) for i in range(rounds)]
            ts += [threading.Thread(target=polite, args=(i,)) for i in range(20)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            rep = stop(proc)
            print(f"{'  ' if not bad and rep.get('leaked') == 0 else '!!'} {stack:5} {' '.join(extra):12} "
                  f"{rounds * len(RESETS)} resets, {good[0]}/{20 * good_per} polite served; served {rep.get('served')} "
                  f"aborted {rep.get('aborted')} rejected {rep.get('rejected')} leaked {rep.get('leaked')} panics {rep.get('panics')}")
            for b in bad[:8]:
                print("   BAD", b)


def halfopen(n=600, silent=300, limit=128):
    """`n` clients each send part of a head and shut down their write side (they keep reading):
    the server must close each (EOF, or a `408`/`400`), without answering a request that never
    came whole. Then `silent` connections that never send past `--max-connections limit`: the
    newcomers get served as the silent ones are evicted without an answer."""
    for stack in ("mio", "hyper"):
        for extra in ((), ("--half-close",)):
            proc, addr = start(stack, extra=("--max-connections", str(limit)) + extra)
            results = {}
            lock = threading.Lock()

            def one(i):
                s = socket.create_connection(addr)
                s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-part: " + str(i).encode())
                s.shutdown(socket.SHUT_WR)
                s.settimeout(15)
                got = b""
                try:
                    while True:
                        c = s.recv(4096)
                        if not c:
                            break
                        got += c
                    end = "EOF"
                except socket.timeout:
                    end = "open"
                except OSError as e:
                    end = type(e).__name__
                s.close()
                key = (got.split(b"\r\n")[0].decode("latin-1") or "-", end)
                with lock:
                    results[key] = results.get(key, 0) + 1

            t0 = time.time()
            ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            took = time.time() - t0
            # silent ones past the limit; then a newcomer every 20 ms until `silent` are served
            socks = []
            for _ in range(silent):
                socks.append(socket.create_connection(addr))
            served = refused = 0
            deadline = time.time() + 30
            while served < silent and time.time() < deadline:
                raw, end = exchange(addr, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", wait=5)
                if raw.startswith(b"HTTP/1.1 200"):
                    served += 1
                else:
                    refused += 1
                    time.sleep(0.02)
            silent_got = {}
            for s in socks:
                s.settimeout(0.5)
                try:
                    c = s.recv(100)
                    k = "EOF" if not c else c.split(b"\r\n")[0].decode("latin-1")
                except socket.timeout:
                    k = "open"
                except OSError as e:
                    k = type(e).__name__
                silent_got[k] = silent_got.get(k, 0) + 1
                s.close()
            rep = stop(proc)
            print(f"{stack:5} {' '.join(extra):12} {n} half-open heads in {took:.1f}s: {results}; "
                  f"{silent} silent over {limit}: newcomers served {served} refused {refused}, silent ones got {silent_got}; "
                  f"evicted {rep.get('connections_evicted')} rejected {rep.get('rejected')} refused {rep.get('connections_refused')} "
                  f"served {rep.get('served')} leaked {rep.get('leaked')}")


def halfclose():
    delay = b"GET /delay?ms=200 HTTP/1.1\r\nhost: x\r\n\r\n"
    echo = P + b"content-length: 2048\r\n\r\n" + b"e" * 2048
    shapes = [
        ("400 GET behind a deferred", delay + NEXT * 400),
        ("300 echoes of 2 KiB", echo * 300),
        ("deferred + 100 echoes + cut", delay + echo * 100 + b"GET / HT"),
        ("3000 GET", NEXT * 3000),
    ]
    for stack in ("mio", "hyper"):
        proc, addr = start(stack, extra=("--half-close",))
        try:
            for name, data in shapes:
                s = socket.create_connection(addr)
                s.settimeout(20)

                def send(s=s, data=data):
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)

                t = threading.Thread(target=send)
                t.start()
                got = b""
                end = "EOF"
                try:
                    while True:
                        c = s.recv(1 << 20)
                        if not c:
                            break
                        got += c
                except OSError as e:
                    end = type(e).__name__
                t.join()
                s.close()
                requests = split_requests(data)
                methods = ["POST" if r.startswith(b"POST") else "GET" for r in requests]
                answers, bad = strict(got, end, methods)
                n = len(answers)
                whole = len(requests)
                last = answers[-1] if answers else "-"
                flag = "  " if n == whole and not bad and end == "EOF" else "!!"
                print(f"{flag} {stack:5} {name:30} {n}/{whole} answered, last {last}, then {end} {' '.join(bad[:3])}")
        finally:
            rep = stop(proc)
        print(f"# {stack}: served {rep.get('served')} leaked {rep.get('leaked')}")
        idle_reader(stack)


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def idle_reader(stack, n=20000):
    """--half-close, a client that sends a deferred request, an echo and `n` GETs, its FIN, and
    reads nothing for 3 s (a 4 KiB receive buffer): the server must not spin meanwhile (CPU
    ticks of the process), then answer all of them, the last closing."""
    proc, addr = start(stack, extra=("--half-close",))
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(addr)
        s.sendall(b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\n" + P + b"content-length: 2000\r\n\r\n" + b"e" * 2000)
        s.sendall(NEXT * n)
        s.shutdown(socket.SHUT_WR)
        time.sleep(1)
        t0 = cpu_ticks(proc.pid)
        time.sleep(3)
        spent = cpu_ticks(proc.pid) - t0
        s.settimeout(20)
        got = b""
        end = "EOF"
        try:
            while True:
                c = s.recv(1 << 20)
                if not c:
                    break
                got += c
        except OSError as e:
            end = type(e).__name__
        s.close()
        answers = got.count(b"HTTP/1.1 200 ")
        last_closes = got.rfind(b"connection: close") > got.rfind(b"HTTP/1.1 200 ")
    finally:
        rep = stop(proc)
    flag = "  " if answers == n + 2 and last_closes and end == "EOF" and spent <= 10 else "!!"
    print(f"{flag} {stack:5} never-reading half-closed client: {spent} CPU ticks in 3 s, then {answers}/{n + 2} answered, "
          f"last closes {last_closes}, {end}; served {rep.get('served')} leaked {rep.get('leaked')}")


def split_requests(data):
    """The whole requests in `data` (these shapes only: GET without body, POST with a length)."""
    out, i = [], 0
    while True:
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            return out
        head = data[i:end]
        n = 0
        for ln in head.split(b"\r\n"):
            if ln.lower().startswith(b"content-length:"):
                n = int(ln.split(b":")[1])
        if end + 4 + n > len(data):
            return out
        out.append(data[i:end + 4 + n])
        i = end + 4 + n


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "conform"
    {"conform": conform, "every": every, "rstbody": rstbody, "halfopen": halfopen, "halfclose": halfclose}[mode]()


if __name__ == "__main__":
    main()
