#!/usr/bin/env python3
"""qa12_smuggle: hostile-client round 12's framing battery, beyond round 11's (qa11_framing.py):
smuggling variants (obs-fold and bare LF in framing fields, odd Transfer-Encoding spellings,
Content-Length duplicates that agree, chunk-size and extension edge cases, trailers that try to
set framing), target forms (userinfo, ports, IPv6), requests behind a `connection: close`.
Each case goes to both stacks side by side; the answers are read strictly (qa11lib.Reader) and,
with h11 as a second, independent strict parser, every byte the server sent is fed to an h11
client connection. Prints statuses, `c` for `connection: close`, how the connection ended and
any h11 complaint; the exit JSON of each stack is printed at the end.
With PLAIN=127.0.0.1:PORT, a third column: plain hyper (benches/plain_hyper_echo.rs, started by
hand: REQGUARD_PLAIN_HYPER_ADDR=127.0.0.1:PORT cargo bench --features hyper --bench
plain_hyper_echo), the reference; it routes `GET /` and `POST /echo` only.
usage: qa12_smuggle.py [FILTER]"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import side_by_side  # noqa: E402

P = b"POST /echo HTTP/1.1\r\nhost: x\r\n"
CH = b"3\r\nabc\r\n0\r\n\r\n"
NEXT = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
CASES = [
    # Transfer-Encoding spellings
    ("te-quoted", P + b'transfer-encoding: "chunked"\r\n\r\n' + CH + NEXT),
    ("te-param", P + b"transfer-encoding: chunked;q=1\r\n\r\n" + CH + NEXT),
    ("te-mixed-case", P + b"transfer-encoding: cHuNkEd\r\n\r\n" + CH + NEXT),
    ("te-name-case", P + b"TrAnSfEr-EnCoDiNg: chunked\r\n\r\n" + CH + NEXT),
    ("te-leading-comma", P + b"transfer-encoding: , chunked\r\n\r\n" + CH + NEXT),
    ("te-comma-only", P + b"transfer-encoding: ,\r\n\r\n" + CH + NEXT),
    ("te-obs-fold", P + b"transfer-encoding:\r\n chunked\r\n\r\n" + CH + NEXT),
    ("te-fold-after", P + b"transfer-encoding: chunked\r\n x\r\n\r\n" + CH + NEXT),
    ("te-vtab", P + b"transfer-encoding: chunked\x0b\r\n\r\n" + CH + NEXT),
    ("te-nul", P + b"transfer-encoding: chunked\x00\r\n\r\n" + CH + NEXT),
    ("te-underscore", P + b"transfer_encoding: chunked\r\n\r\n" + CH + NEXT),
    ("te-bare-lf-line", P + b"transfer-encoding: chunked\n\r\n" + CH + NEXT),
    ("te-space-name", P + b" transfer-encoding: chunked\r\n\r\n" + CH + NEXT),
    ("te-identity-chunked", P + b"transfer-encoding: identity, chunked\r\n\r\n" + CH + NEXT),
    ("te-chunked-cl0", P + b"transfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n" + CH + NEXT),
    ("te-cl-bare-lf", P + b"content-length: 3\ntransfer-encoding: chunked\r\n\r\n" + CH + NEXT),
    ("te-http10-ka", b"POST /echo HTTP/1.0\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n" + CH + NEXT),
    # Content-Length spellings
    ("cl-dup-zeros", P + b"content-length: 3\r\ncontent-length: 003\r\n\r\nabc" + NEXT),
    ("cl-comma-nospace", P + b"content-length: 3,3\r\n\r\nabc" + NEXT),
    ("cl-nospace", P + b"content-length:3\r\n\r\nabc" + NEXT),
    ("cl-tabs", P + b"content-length:\t3\t\r\n\r\nabc" + NEXT),
    ("cl-vtab", P + b"content-length: 3\x0b\r\n\r\nabc" + NEXT),
    ("cl-obs-fold", P + b"content-length:\r\n 3\r\n\r\nabc" + NEXT),
    ("cl-name-case", P + b"CONTENT-LENGTH: 3\r\n\r\nabc" + NEXT),
    ("cl-0-dup-3", P + b"content-length: 0\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("cl-long-zeros", P + b"content-length: " + b"0" * 200 + b"3\r\n\r\nabc" + NEXT),
    ("cl-underscore", P + b"content_length: 3\r\n\r\nabc" + NEXT),
    ("cl-get-body-pipelined", b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 28\r\n\r\n" + NEXT + NEXT),
    # chunk lines
    ("chunk-upper-hex", P + b"transfer-encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n" + NEXT),
    ("chunk-zeros-17", P + b"transfer-encoding: chunked\r\n\r\n" + b"0" * 17 + b"3\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-zeros-last", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n000\r\n\r\n" + NEXT),
    ("chunk-size-lf", P + b"transfer-encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-data-lf", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n" + NEXT),
    ("chunk-data-cr", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r0\r\n\r\n" + NEXT),
    ("chunk-size-trailing-ws", P + b"transfer-encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-size-tab", P + b"transfer-encoding: chunked\r\n\r\n3\t\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-quoted-crlf", P + b'transfer-encoding: chunked\r\n\r\n3;a="x\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("chunk-ext-lf", P + b"transfer-encoding: chunked\r\n\r\n3;a=b\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-no-name", P + b"transfer-encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-on-last", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0;x=y\r\n\r\n" + NEXT),
    ("chunk-ext-quoted-esc", P + b'transfer-encoding: chunked\r\n\r\n3;a="b\\"c"\r\nabc\r\n0\r\n\r\n' + NEXT),
    ("chunk-ext-8bit", P + b"transfer-encoding: chunked\r\n\r\n3;a=\xff\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-20k", P + b"transfer-encoding: chunked\r\n\r\n3;" + b"a=b;" * 5000 + b"x\r\nabc\r\n0\r\n\r\n" + NEXT),
    ("chunk-ext-many-small", P + b"transfer-encoding: chunked\r\n\r\n" + b"1;" + b"e" * 100 + b"\r\na\r\n" + (b"1;" + b"e" * 100 + b"\r\na\r\n") * 300 + b"0\r\n\r\n" + NEXT),
    ("chunk-empty-size", P + b"transfer-encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n" + NEXT),
    # trailers that try to set framing
    ("trailer-cl", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ncontent-length: 28\r\n\r\n" + NEXT + NEXT),
    ("trailer-te", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ntransfer-encoding: chunked\r\n\r\n" + NEXT),
    ("trailer-host", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nhost: evil\r\n\r\n" + NEXT),
    ("trailer-bare-lf-mid", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: 1\n\r\n" + NEXT),
    ("trailer-ws-colon", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx : 1\r\n\r\n" + NEXT),
    ("trailer-conn-close", P + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nconnection: close\r\n\r\n" + NEXT),
    # heads
    ("head-crlf-lf-end", b"GET / HTTP/1.1\r\nhost: x\r\n\n" + NEXT),
    ("head-lf-crlf-end", b"GET / HTTP/1.1\nhost: x\n\r\n" + NEXT),
    ("reqline-trailing-sp", b"GET / HTTP/1.1 \r\nhost: x\r\n\r\n" + NEXT),
    ("reqline-lf-only", b"GET / HTTP/1.1\nhost: x\r\n\r\n" + NEXT),
    ("field-value-only-ws", b"GET / HTTP/1.1\r\nhost: x\r\nx-a:   \r\n\r\n" + NEXT),
    ("field-name-8bit", b"GET / HTTP/1.1\r\nhost: x\r\nx\xffa: b\r\n\r\n" + NEXT),
    ("field-del", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x7fb\r\n\r\n" + NEXT),
    ("host-ws-colon", b"GET / HTTP/1.1\r\nhost\t: x\r\n\r\n" + NEXT),
    ("host-two-case", b"GET / HTTP/1.1\r\nhost: x\r\nHOST: x\r\n\r\n" + NEXT),
    ("host-comma", b"GET / HTTP/1.1\r\nhost: x, y\r\n\r\n" + NEXT),
    ("host-port-big", b"GET / HTTP/1.1\r\nhost: x:99999\r\n\r\n" + NEXT),
    ("host-ipv6", b"GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n" + NEXT),
    ("host-ipv6-bad", b"GET / HTTP/1.1\r\nhost: [::1\r\n\r\n" + NEXT),
    ("host-ipvfuture", b"GET / HTTP/1.1\r\nhost: [v1.x]\r\n\r\n" + NEXT),
    # target forms
    ("abs-userinfo", b"GET http://u:p@x/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("abs-userinfo-at", b"GET http://x@y/ HTTP/1.1\r\nhost: y\r\n\r\n" + NEXT),
    ("abs-port", b"GET http://x:8080/ HTTP/1.1\r\nhost: x:8080\r\n\r\n" + NEXT),
    ("abs-port-empty", b"GET http://x:/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("abs-ipv6", b"GET http://[::1]:8080/ HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n" + NEXT),
    ("abs-ipv6-bad", b"GET http://[::1/ HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("abs-host-mismatch", b"GET http://a/ HTTP/1.1\r\nhost: b\r\n\r\n" + NEXT),
    ("abs-https", b"GET https://a/ HTTP/1.1\r\nhost: a\r\n\r\n" + NEXT),
    ("abs-no-slash-query", b"GET http://a?x=1 HTTP/1.1\r\nhost: a\r\n\r\n" + NEXT),
    ("abs-empty-host", b"GET http:/// HTTP/1.1\r\nhost: a\r\n\r\n" + NEXT),
    ("abs-http10-no-host", b"GET http://a/ HTTP/1.0\r\n\r\n"),
    ("abs-delay", b"GET http://a/delay?ms=1 HTTP/1.1\r\nhost: a\r\n\r\n" + NEXT),
    ("options-star-body", b"OPTIONS * HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("options-star-10", b"OPTIONS * HTTP/1.0\r\n\r\n"),
    ("options-abs-star", b"OPTIONS http://x HTTP/1.1\r\nhost: x\r\n\r\n" + NEXT),
    ("trace-body", b"TRACE / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("head-every-route", b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nHEAD /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\nHEAD /echo HTTP/1.1\r\nhost: x\r\n\r\nHEAD /panic HTTP/1.1\r\nhost: x\r\n\r\nHEAD /healthz/live HTTP/1.1\r\nhost: x\r\n\r\nHEAD /healthz/ready HTTP/1.1\r\nhost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nhost: x\r\n\r\nHEAD * HTTP/1.1\r\nhost: x\r\n\r\n"),
    # Expect
    ("expect-417", P + b"expect: gimme\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-list", P + b"expect: 100-continue, foo\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-params", P + b"expect: 100-continue;a=b\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-two", P + b"expect: 100-continue\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("expect-get", b"GET / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n" + NEXT),
    # Upgrade
    ("upgrade-h2c-post", P + b"connection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("upgrade-ws-then-frames", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
    ("upgrade-no-conn", b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: h2c\r\n\r\n" + NEXT),
    ("connect-pipelined", b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n" + NEXT),
    # requests behind a close: must not be processed (RFC 9112 9.6)
    ("close-then-get", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + NEXT),
    ("close-delay-then-panic", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("close-delay-then-echo", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + P + b"content-length: 3\r\n\r\nabc"),
    ("http10-delay-then-panic", b"GET /delay?ms=100 HTTP/1.0\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("close-middle-then-panic", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("http10-middle-then-panic", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.0\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("close-post-then-panic", P + b"connection: close\r\ncontent-length: 3\r\n\r\nabcGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("close-chunked-then-panic", P + b"connection: close\r\ntransfer-encoding: chunked\r\n\r\n" + CH + b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("delay-bad-then-panic", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("delay-413-then-panic", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\n" + P + b"content-length: 2000000\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("delay-expect-404", b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\nPOST /nope HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("close-head-then-get", b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + NEXT),
    ("bad-then-get", b"GET / HTTP/1.1\r\nhost: x\r\nx y\r\n\r\n" + NEXT),
    ("http10-ka-close-both", b"GET / HTTP/1.0\r\nconnection: keep-alive, close\r\n\r\n" + NEXT),
    ("http10-ka-post", b"POST /echo HTTP/1.0\r\nconnection: keep-alive\r\ncontent-length: 3\r\n\r\nabc" + NEXT),
    ("http10-host-two", b"GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n"),
]


def main():
    plain = None
    if os.environ.get("PLAIN"):
        host, port = os.environ["PLAIN"].split(":")
        plain = (host, int(port))
    side_by_side(CASES, sys.argv[1] if len(sys.argv) > 1 else "", widths=(26, 28, 28),
                 h11_methods=rb"(?:^|\n)([A-Z]+) [^ \r\n]+ HTTP/", plain=plain)


main()
