#!/usr/bin/env python3
"""qa14_heads: request heads and framings earlier rounds did not send, against both stacks, each
answer read strictly (qa11lib.probe) and by h11; one line per case with what each stack gave.
usage: BIN=target/release/reqguard-demo qa14_heads.py [FILTER]"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import h11_check, probe, read_all, start, stop  # noqa: E402

NEXT = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
P = b"POST /echo HTTP/1.1\r\nhost: x\r\n"
TOKENS = b"!#$%&'*+-.^_`|~09azAZ"

CASES = [
    # request line
    ("two-spaces-after-method", b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("two-spaces-before-version", b"GET /  HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("tab-separator", b"GET\t/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("lowercase-method", b"get / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("lowercase-post", b"post /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("mixed-case-method", b"Get / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("method-tokens", TOKENS + b" / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("method-200", b"M" * 200 + b" / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("method-4000", b"M" * 4000 + b" / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("method-9000", b"M" * 9000 + b" / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("method-unknown-body", b"FOO / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("method-unknown-chunked", b"FOO / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("version-lower", b"GET / http/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("version-1.1.1", b"GET / HTTP/1.11\r\nhost: x\r\n\r\n" + NEXT),
    ("version-01.1", b"GET / HTTP/01.1\r\nhost: x\r\n\r\n" + NEXT),
    ("version-missing", b"GET /\r\nhost: x\r\n\r\n" + NEXT),
    ("http09", b"GET /\r\n"),
    ("target-space-in", b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-utf8", "GET /é HTTP/1.1\r\nhost: x\r\n\r\n".encode() + NEXT),
    ("target-latin1", b"GET /\xe9 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-nul", b"GET /\x00 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-del", b"GET /\x7f HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-query-only", b"GET ?a=b HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-double-slash", b"GET //x HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-star-get", b"GET * HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("target-authority-get", b"GET x:80 HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    # absolute-form
    ("abs-other-authority", b"GET http://other.example:81/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("abs-HTTP-upper", b"GET HTTP://X/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("abs-no-host-field", b"GET http://x/ HTTP/1.1\r\n\r\n" + NEXT),
    ("abs-bad-host-field", b"GET http://x/ HTTP/1.1\r\nhost: a b\r\n\r\n" + NEXT),
    ("abs-host-at", b"GET http://a@/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("abs-post-echo", b"POST http://x/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("abs-options", b"OPTIONS http://x/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("options-star", b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("options-star-q", b"OPTIONS *?a HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("options-slash-star", b"OPTIONS /* HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("connect-ok", b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n" + NEXT),
    ("connect-body", b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("connect-ipv6", b"CONNECT [::1]:443 HTTP/1.1\r\nhost: [::1]:443\r\n\r\n" + NEXT),
    ("trace", b"TRACE / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("trace-star", b"TRACE * HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("delete", b"DELETE / HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("patch-echo", b"PATCH /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("put-echo", b"PUT /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    # fields
    ("obs-fold-plain", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n" + NEXT),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n\tc\r\n\r\n" + NEXT),
    ("obs-fold-host", b"GET / HTTP/1.1\r\nhost:\r\n x\r\n\r\n" + NEXT),
    ("obs-fold-first", b"GET / HTTP/1.1\r\n x: y\r\nhost: x\r\n\r\n" + NEXT),
    ("bare-cr-value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\rc\r\n\r\n" + NEXT),
    ("bare-cr-name", b"GET / HTTP/1.1\r\nhost: x\r\nx\r-a: b\r\n\r\n" + NEXT),
    ("bare-cr-line", b"GET / HTTP/1.1\rhost: x\r\n\r\n" + NEXT),
    ("bare-cr-end", b"GET / HTTP/1.1\r\nhost: x\r\n\r" + NEXT),
    ("bare-lf-all", b"GET / HTTP/1.1\nhost: x\n\n" + NEXT),
    ("bare-lf-value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\nc: d\r\n\r\n" + NEXT),
    ("name-tokens", b"GET / HTTP/1.1\r\nhost: x\r\n" + TOKENS + b": v\r\n\r\n" + NEXT),
    ("name-empty", b"GET / HTTP/1.1\r\nhost: x\r\n: v\r\n\r\n" + NEXT),
    ("name-at", b"GET / HTTP/1.1\r\nhost: x\r\nx@y: v\r\n\r\n" + NEXT),
    ("name-paren", b"GET / HTTP/1.1\r\nhost: x\r\nx(y): v\r\n\r\n" + NEXT),
    ("name-slash", b"GET / HTTP/1.1\r\nhost: x\r\nx/y: v\r\n\r\n" + NEXT),
    ("name-quote", b'GET / HTTP/1.1\r\nhost: x\r\nx"y: v\r\n\r\n' + NEXT),
    ("name-brace", b"GET / HTTP/1.1\r\nhost: x\r\nx{y}: v\r\n\r\n" + NEXT),
    ("name-semicolon", b"GET / HTTP/1.1\r\nhost: x\r\nx;y: v\r\n\r\n" + NEXT),
    ("name-8bit", b"GET / HTTP/1.1\r\nhost: x\r\nx\x80: v\r\n\r\n" + NEXT),
    ("name-ws-before-colon", b"GET / HTTP/1.1\r\nhost: x\r\nx-a : v\r\n\r\n" + NEXT),
    ("name-no-colon", b"GET / HTTP/1.1\r\nhost: x\r\nxa\r\n\r\n" + NEXT),
    ("value-obs-text", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: \xe9\xff\r\n\r\n" + NEXT),
    ("value-nul", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n" + NEXT),
    ("value-ctl", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x01b\r\n\r\n" + NEXT),
    ("value-empty-colon-only", b"GET / HTTP/1.1\r\nhost: x\r\nx-a:\r\n\r\n" + NEXT),
    ("fields-64", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x%d: y\r\n" % i for i in range(63)) + b"\r\n" + NEXT),
    ("fields-65", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x%d: y\r\n" % i for i in range(64)) + b"\r\n" + NEXT),
    ("fields-1000", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x: y\r\n" for i in range(1000)) + b"\r\n" + NEXT),
    ("fields-5000-tiny", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x:\r\n" for i in range(5000)) + b"\r\n" + NEXT),
    ("one-field-8k", b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 8200 + b"\r\n\r\n" + NEXT),
    ("head-just-8k", b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * (8192 - 31 - 4) + b"\r\n\r\n" + NEXT),
    ("head-8k-plus1", b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * (8192 - 31 - 3) + b"\r\n\r\n" + NEXT),
    # framing
    ("cl-equal-dup", P + b"content-length: 3\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("cl-equal-list", P + b"content-length: 3, 3\r\n\r\nabc" + NEXT),
    ("cl-empty", P + b"content-length: \r\n\r\n" + NEXT),
    ("cl-negative", P + b"content-length: -1\r\n\r\n" + NEXT),
    ("cl-space-inside", P + b"content-length: 1 2\r\n\r\n" + b"a" * 12 + NEXT),
    ("cl-get-body", b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("cl-head-body", b"HEAD / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("te-http10", b"POST /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-http10-cl", b"POST /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\nabc"),
    ("te-identity", P + b"transfer-encoding: identity\r\n\r\nabc" + NEXT),
    ("te-chunked-get", b"GET / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-quoted", P + b'transfer-encoding: chunked\r\n\r\n3;a="b c"\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("chunk-ext-quoted-semi", P + b'transfer-encoding: chunked\r\n\r\n3;a="b;c"\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("chunk-ext-quoted-unterminated", P + b'transfer-encoding: chunked\r\n\r\n3;a="bc\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("chunk-ext-bws", P + b"transfer-encoding: chunked\r\n\r\n3 ; a = b\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-many", P + b"transfer-encoding: chunked\r\n\r\n3;a;b;c=d;e=\"f\"\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-quoted-ctl", P + b'transfer-encoding: chunked\r\n\r\n3;a="\x01"\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("chunk-ext-quoted-pair-ctl", P + b'transfer-encoding: chunked\r\n\r\n3;a="\\\x01"\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("trailers-ok", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\ny-t: 2\r\n\r\n" + NEXT),
    ("trailers-obs-text", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: \xe9\r\n\r\n" + NEXT),
    ("trailers-bad-name", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx y: 1\r\n\r\n" + NEXT),
    ("trailers-empty-name", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n: 1\r\n\r\n" + NEXT),
    ("trailers-bare-cr", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: a\rb\r\n\r\n" + NEXT),
    ("trailers-nul", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: a\x00b\r\n\r\n" + NEXT),
    # connection handling
    ("http10-ka-two", b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"),
    ("http10-ka-upper", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" + NEXT),
    ("http10-plain", b"GET / HTTP/1.0\r\n\r\n" + NEXT),
    ("http10-head-ka", b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n" + NEXT),
    ("conn-close-upper", b"GET / HTTP/1.1\r\nhost: x\r\nConnection: CLOSE\r\n\r\n" + NEXT),
    ("conn-close-list", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo, close , bar\r\n\r\n" + NEXT),
    ("conn-two-fields", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo\r\nconnection: close\r\n\r\n" + NEXT),
    ("conn-closed-token", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: closed\r\n\r\n" + NEXT),
    ("upgrade-ws", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n" + NEXT),
    ("upgrade-h2c", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n" + NEXT),
    ("upgrade-post-echo", P + b"connection: upgrade\r\nupgrade: foo\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("upgrade-options", b"OPTIONS * HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: foo\r\n\r\n" + NEXT),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("expect-100-body-sent", P + b"expect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-100-zero", P + b"expect: 100-continue\r\ncontent-length: 0\r\n\r\n" + NEXT),
    ("expect-100-chunked-sent", P + b"expect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("expect-100-upper", P + b"Expect: 100-Continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-100-http10", b"POST /echo HTTP/1.0\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc"),
    ("expect-100-413", P + b"expect: 100-continue\r\ncontent-length: 9999999\r\n\r\n" + NEXT),
    ("expect-100-get-route", b"GET / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-100-delay", b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-100-pipelined-behind", NEXT + P + b"expect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-100-head", b"HEAD / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-empty", P + b"expect: \r\ncontent-length: 3\r\n\r\nabc" + NEXT),
]


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else ""
    servers = {st: start(st) for st in ("mio", "hyper")}
    diffs = ran = 0
    for name, data in CASES:
        if flt not in name:
            continue
        ran += 1
        got = {}
        for st, (_, addr) in servers.items():
            got[st] = probe(addr, data)
            methods = [m.decode() for m in re.findall(rb"(?:^|\n)([A-Za-z]+) [^ \r\n]+ HTTP/", data)]
            complaint = h11_check(read_all(addr, data, wait=0.6), methods)
            if complaint:
                got[st] += " " + complaint[:80]
        mark = "  " if got["mio"] == got["hyper"] else "!="
        diffs += mark == "!="
        print(f"{mark} {name:30} mio: {got['mio']:30} hyper: {got['hyper']}", flush=True)
    reports = {st: stop(p) for st, (p, _) in servers.items()}
    for st, rep in reports.items():
        print(st, {k: rep[k] for k in ("served", "undelivered", "refused", "rejected", "aborted", "leaked", "panics")},
              rep.get("outcomes"))
    print(f"{ran} cases, {diffs} differ")


main()
