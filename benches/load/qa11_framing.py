#!/usr/bin/env python3
"""qa11_framing: sends each raw request below to both stacks (mio and --stack hyper, side by
side) and prints the answers' statuses, `connection: close`, and how the connection ended,
flagging the cases where the stacks differ. usage: qa11_framing.py [FILTER]"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop, probe  # noqa: E402

H = b"host: x\r\n"
CASES = [
    ("obs-fold", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n"),
    ("obs-fold-first", b"GET / HTTP/1.1\r\n x: y\r\nhost: x\r\n\r\n"),
    ("bare-LF-head", b"GET / HTTP/1.1\nhost: x\n\n"),
    ("bare-CR-field", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\rc\r\n\r\n"),
    ("bare-CR-line-end", b"GET / HTTP/1.1\rhost: x\r\n\r\n"),
    ("ws-before-colon", b"GET / HTTP/1.1\r\nhost : x\r\n\r\n"),
    ("ws-before-colon-cl", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length : 3\r\n\r\nabc"),
    ("chunk-ext", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3;a=b;c=\"d\"\r\nabc\r\n0\r\n\r\n"),
    ("chunk-ext-bad", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3;a b\r\nabc\r\n0\r\n\r\n"),
    ("chunk-ext-ws", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3 ;a=b\r\nabc\r\n0\r\n\r\n"),
    ("trailers", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"),
    ("trailer-fold", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n 2\r\n\r\n"),
    ("chunk-huge", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    ("chunk-size-16f", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffff0\r\nabc"),
    ("chunk-leading-zeros", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0000000000000000000003\r\nabc\r\n0\r\n\r\n"),
    ("chunk-0x", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-neg", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-plus", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-no-crlf-after-data", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
    ("chunk-last-LF", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\n\r\n"),
    ("chunk-last-no-final-crlf", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"),
    ("cl-leading-zeros", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 0003\r\n\r\nabc"),
    ("cl-plus", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: +3\r\n\r\nabc"),
    ("cl-neg", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: -3\r\n\r\nabc"),
    ("cl-comma-equal", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3, 3\r\n\r\nabc"),
    ("cl-comma-unequal", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3, 4\r\n\r\nabcd"),
    ("cl-dup-equal", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc"),
    ("cl-dup-unequal", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"),
    ("cl-empty", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: \r\n\r\n"),
    ("cl-hex", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 0x3\r\n\r\nabc"),
    ("cl-space-inside", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1 2\r\n\r\nabcdefghijkl"),
    ("cl-trailing-comma", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3,\r\n\r\nabc"),
    ("cl-huge", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999999999999\r\n\r\nabc"),
    ("cl-and-te", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-identity", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: identity\r\ncontent-length: 3\r\n\r\nabc"),
    ("te-chunked-upper", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-chunked-chunked", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-two-lines", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-chunked-then-gzip", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-empty", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: \r\n\r\n"),
    ("te-ws-chunked", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding:\tchunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-xchunked", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te-http10", b"POST /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("http10-ka", b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
    ("http10-ka-upper", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("http10-noka", b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
    ("conn-close-ka-both", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, close\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("conn-close-upper", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: CLOSE\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("conn-close-two-lines", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo\r\nconnection: close\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("absolute-form", b"GET http://x/ HTTP/1.1\r\nhost: y\r\n\r\n"),
    ("absolute-form-upper", b"GET HTTP://X/ HTTP/1.1\r\nhost: y\r\n\r\n"),
    ("absolute-no-host-field", b"GET http://x/ HTTP/1.1\r\n\r\n"),
    ("options-star", b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("get-star", b"GET * HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("connect", b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n"),
    ("connect-origin", b"CONNECT / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("authority-get", b"GET x:80 HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("method-lower", b"get / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("method-weird", b"G@T / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("method-long", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("version-lower", b"GET / http/1.1\r\nhost: x\r\n\r\n"),
    ("version-1.2", b"GET / HTTP/1.2\r\nhost: x\r\n\r\n"),
    ("version-2", b"GET / HTTP/2.0\r\nhost: x\r\n\r\n"),
    ("version-09", b"GET /\r\n\r\n"),
    ("double-space", b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("tab-sep", b"GET\t/\tHTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-space", b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-ctl", b"GET /a\x01b HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-8bit", b"GET /\xff HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("field-nul", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n"),
    ("field-8bit", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\xffb\r\n\r\n"),
    ("field-name-bad", b"GET / HTTP/1.1\r\nhost: x\r\nx(a): b\r\n\r\n"),
    ("field-no-colon", b"GET / HTTP/1.1\r\nhost: x\r\nxa\r\n\r\n"),
    ("field-empty-name", b"GET / HTTP/1.1\r\nhost: x\r\n: b\r\n\r\n"),
    ("host-empty", b"GET / HTTP/1.1\r\nhost: \r\n\r\n"),
    ("host-two", b"GET / HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n"),
    ("host-userinfo", b"GET / HTTP/1.1\r\nhost: u@x\r\n\r\n"),
    ("fields-64", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x-%d: y\r\n" % i for i in range(63)) + b"\r\n"),
    ("fields-65", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x-%d: y\r\n" % i for i in range(64)) + b"\r\n"),
    ("head-8k", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * 8100 + b"\r\n\r\n"),
    ("head-9k", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * 9000 + b"\r\n\r\n"),
    ("expect-100", b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc"),
    ("expect-100-upper", b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-Continue\r\ncontent-length: 3\r\n\r\nabc"),
    ("expect-other", b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: foo\r\ncontent-length: 3\r\n\r\nabc"),
    ("expect-100-nobody", b"GET / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n"),
    ("expect-100-cl0", b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n"),
    ("expect-100-chunked", b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("pipeline-head-get", b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("pipeline-head-echo", b"HEAD /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("pipeline-head-delay", b"HEAD /delay?ms=20 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\nHEAD /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("pipeline-mixed", b"GET /delay?ms=30 HTTP/1.1\r\nhost: x\r\n\r\nPOST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcDELETE / HTTP/1.1\r\nhost: x\r\n\r\nOPTIONS / HTTP/1.1\r\nhost: x\r\n\r\nFOO / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("pipeline-bad-middle", b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("get-with-body", b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("head-with-chunked-body", b"HEAD / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("leading-crlf", b"\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("panic", b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("delay-bad", b"GET /delay?ms=abc HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("delay-huge", b"GET /delay?ms=99999999999999999999 HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("query-only", b"GET ?a HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("dot-segments", b"GET /./ HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("percent-root", b"GET /%2F HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("trace", b"TRACE / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("upgrade-h2c", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("upgrade-ws", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("post-no-length", b"POST /echo HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("post-http10-no-length", b"POST /echo HTTP/1.0\r\n\r\nabc"),
]


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else ""
    servers = {st: start(st) for st in ("mio", "hyper")}
    diffs = 0
    for name, data in CASES:
        if flt not in name:
            continue
        got = {st: probe(addr, data) for st, (_, addr) in servers.items()}
        mark = "  " if got["mio"] == got["hyper"] else "!="
        diffs += mark == "!="
        print(f"{mark} {name:28} mio: {got['mio']:30} hyper: {got['hyper']}")
    reports = {st: stop(p) for st, (p, _) in servers.items()}
    for st, rep in reports.items():
        print(st, {k: rep[k] for k in ("served", "refused", "rejected", "aborted", "leaked", "panics")})
    print(f"{len(CASES)} cases, {diffs} differ")


main()
