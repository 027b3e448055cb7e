#!/usr/bin/env python3
"""qa16_conformance: request heads and framings of round 16 (Connection with several tokens,
TE, unknown expectations, Content-Length spellings, chunk sizes with leading zeros and 16+ hex
digits, obs-text and NUL in fields, method case variants, absolute-form with userinfo, Host
with port 0, IPv6 and IPvFuture literals, a trailing dot, HEAD pipelined with GET, /panic with
bodies), each sent to both stacks on its own connection and the answers read strictly
(qa11lib.probe); `!!` marks a case where the stacks differ (docs/hyper.md lists the differences
that stay: HTTP/1.0 persistence, `100 Continue` for a body sent with its head, sizes past u64,
hyper's close after a trailer section). Then each exit JSON's counts.
Round 16 found: `Host: [zz]` (and `[::1::2]`, `[1.2.3.4]`, `http://[zz]/`) served 200 on both
stacks (RFC 9112 §3.2: 400); `GET /panic` with a broken chunked body 500 without close then a
close on hyper (mio 400 + close). Both fixed (tests/probe_client/v16.rs).
usage: BIN=target/release/reqguard-demo qa16_conformance.py [CASE NAME...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import probe, start, stop  # noqa: E402

cases = {
 "conn close,upgrade": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close, upgrade\r\nupgrade: foo\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "conn upgrade,close": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade,close\r\nupgrade: h2c\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "conn keep-alive, close": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, close\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "conn CLOSE": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: CLOSE\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "conn twice": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo\r\nconnection: close\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "conn close;x": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: closex\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "10 ka,close": b"GET / HTTP/1.0\r\nconnection: keep-alive, close\r\n\r\nGET / HTTP/1.0\r\n\r\n",
 "10 ka": b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
 "TE trailers": b"GET / HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "TE gzip req": b"GET / HTTP/1.1\r\nhost: x\r\nte: gzip;q=1, trailers\r\nconnection: te\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect foo": b"GET / HTTP/1.1\r\nhost: x\r\nexpect: foo\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect foo post": b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: foo\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect 100-CONTINUE": b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-CONTINUE\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect empty": b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect:\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect 100c,foo": b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue, foo\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect twice": b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "expect 10": b"POST /echo HTTP/1.0\r\nexpect: foo\r\ncontent-length: 3\r\n\r\nabc",
 "CL +5": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: +3\r\n\r\nabc",
 "CL 0x3": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 0x3\r\n\r\nabc",
 "CL 003": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 003\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL ' 3 '": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length:  3 \r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL '3\\t'": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length:\t3\t\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL '3 3'": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3 3\r\n\r\nabc",
 "CL empty": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: \r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL -0": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: -0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL 3,": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3,\r\n\r\nabc",
 "CL 3,,3": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3,3\r\n\r\nabc",
 "CL 3 + 3": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL 3 + 03": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 03\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL 20 zeros": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 000000000000000000003\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CL unicode digit": "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: \u0663\r\n\r\nabc".encode("utf-8"),
 "chunk 005": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n003\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk 16 zeros+3": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk 15 zeros+3": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0000000000000003\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk 40 zeros+3": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + b"0"*40 + b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk last 000": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n000\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk last 20 zeros": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n" + b"0"*20 + b"\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk 17 hex ffff": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n",
 "chunk 3 space": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk 3;ext": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3 ;a=b\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "chunk uppercase A": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nA\r\nabcdefghij\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "TE Chunked": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "TE ' chunked '": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding:  chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "TE chunked;q": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked;q=1\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "TE identity": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: identity\r\n\r\n",
 "obs-text value": b"GET / HTTP/1.1\r\nhost: x\r\nx-a: caf\xe9\xff\x80\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "NUL value": b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "DEL value": b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x7fb\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CR value": b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\rb\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "obs-text name": b"GET / HTTP/1.1\r\nhost: x\r\nx-\xe9: a\r\n\r\n",
 "obs-text target": b"GET /\xe9 HTTP/1.1\r\nhost: x\r\n\r\n",
 "obs-text host": b"GET / HTTP/1.1\r\nhost: caf\xe9\r\n\r\n",
 "space before colon": b"GET / HTTP/1.1\r\nhost: x\r\nx-a : b\r\n\r\n",
 "get lowercase": b"get / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "Get": b"Get / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "head lowercase": b"head / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "post lc echo": b"post /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "http lowercase ver": b"GET / http/1.1\r\nhost: x\r\n\r\n",
 "abs userinfo": b"GET http://user@x/ HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs userinfo pw": b"GET http://user:pw@x/ HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs empty userinfo": b"GET http://@x/ HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs HTTP upper": b"GET HTTP://X/ HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs host differs": b"GET http://a/ HTTP/1.1\r\nhost: b\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs no Host": b"GET http://a/ HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs port 0": b"GET http://a:0/ HTTP/1.1\r\nhost: a\r\n\r\n",
 "abs empty port": b"GET http://a:/ HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "abs ipv6": b"GET http://[::1]:80/ HTTP/1.1\r\nhost: [::1]:80\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host port 0": b"GET / HTTP/1.1\r\nhost: x:0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host port 65536": b"GET / HTTP/1.1\r\nhost: x:65536\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host port 99999999": b"GET / HTTP/1.1\r\nhost: x:99999999999\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host empty port": b"GET / HTTP/1.1\r\nhost: x:\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6": b"GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6 noport": b"GET / HTTP/1.1\r\nhost: [::1]\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6 bad": b"GET / HTTP/1.1\r\nhost: [::1\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6 bare": b"GET / HTTP/1.1\r\nhost: ::1\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6 zone": b"GET / HTTP/1.1\r\nhost: [fe80::1%25eth0]\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipvfuture": b"GET / HTTP/1.1\r\nhost: [v1.x]\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6 garbage": b"GET / HTTP/1.1\r\nhost: [zz]\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host ipv6 double ::": b"GET / HTTP/1.1\r\nhost: [::1::2]\r\n\r\n",
 "host ipv4 in brackets": b"GET / HTTP/1.1\r\nhost: [1.2.3.4]\r\n\r\n",
 "abs ipv6 garbage": b"GET http://[zz]/ HTTP/1.1\r\nhost: x\r\n\r\n",
 "panic too large": b"GET /panic HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\nabc",
 "host trailing dot": b"GET / HTTP/1.1\r\nhost: example.com.\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host trailing dot port": b"GET / HTTP/1.1\r\nhost: example.com.:80\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host empty": b"GET / HTTP/1.1\r\nhost:\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host userinfo": b"GET / HTTP/1.1\r\nhost: u@x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host pct": b"GET / HTTP/1.1\r\nhost: x%41\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host bad pct": b"GET / HTTP/1.1\r\nhost: x%zz\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host two ports": b"GET / HTTP/1.1\r\nhost: x:1:2\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host space inside": b"GET / HTTP/1.1\r\nhost: x y\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "host comma": b"GET / HTTP/1.1\r\nhost: x,y\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "HEAD GET HEAD pipeline": b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nhost: x\r\n\r\nGET /nope HTTP/1.1\r\nhost: x\r\n\r\nHEAD /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\nGET /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\nHEAD /panic HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "HEAD echo": b"HEAD /echo HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "HEAD with body CL": b"HEAD / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "HEAD delay bad": b"HEAD /delay?ms=abc HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "GET with CL body": b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay abc": b"GET /delay?ms=abc HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay huge": b"GET /delay?ms=99999999999999999999 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay neg": b"GET /delay?ms=-1 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay twice": b"GET /delay?ms=1&ms=2 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay empty": b"GET /delay?ms= HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay none": b"GET /delay HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "delay pct": b"GET /delay?m%73=1 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "path //": b"GET // HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "path /?": b"GET /? HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "path /%2F": b"GET /%65cho HTTP/1.1\r\nhost: x\r\n\r\n",
 "path /./": b"GET /./ HTTP/1.1\r\nhost: x\r\n\r\n",
 "target with space": b"GET / x HTTP/1.1\r\nhost: x\r\n\r\n",
 "two spaces": b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n",
 "tab sep": b"GET\t/\tHTTP/1.1\r\nhost: x\r\n\r\n",
 "trailing space version": b"GET / HTTP/1.1 \r\nhost: x\r\n\r\n",
 "lf only": b"GET / HTTP/1.1\nhost: x\n\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "leading crlf": b"\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "leading spaces": b"  GET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "obs-fold": b"GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n",
 "first field folded": b"GET / HTTP/1.1\r\n host: x\r\n\r\n",
 "empty name": b"GET / HTTP/1.1\r\nhost: x\r\n: b\r\n\r\n",
 "OPTIONS *": b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "TRACE": b"TRACE / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "PATCH echo": b"PATCH /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "panic with CL": b"GET /panic HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "panic bad chunk": b"GET /panic HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
 "HTTP/1.0 chunked resp?": b"POST /echo HTTP/1.0\r\ncontent-length: 3\r\n\r\nabc",
 "1.0 host absent": b"GET / HTTP/1.0\r\n\r\n",
 "1.0 bad host": b"GET / HTTP/1.0\r\nhost: a b\r\n\r\n",
 "1.0 two hosts": b"GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n",
 "echo CL 0": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "echo no CL": b"POST /echo HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "echo over max 1.0": b"POST /echo HTTP/1.0\r\ncontent-length: 99999999\r\n\r\n",
 "max-forwards": b"OPTIONS / HTTP/1.1\r\nhost: x\r\nmax-forwards: 0\r\n\r\n",
 "upgrade h2c": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "upgrade websocket": b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "CONNECT": b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
 "trailer field TE": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ncontent-length: 5\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
}
which = sys.argv[1:] or None
res = {}
for stack in ("mio", "hyper"):
    proc, addr = start(stack)
    for name, data in cases.items():
        if which and name not in which: continue
        res.setdefault(name, {})[stack] = probe(addr, data, wait=1.2 if "panic" in name or "TE identity" in name else 0.6)
    res.setdefault("_report", {})[stack] = stop(proc)
for name, r in res.items():
    if name == "_report": continue
    mark = "  " if r["mio"] == r["hyper"] else "!!"
    print(f"{mark} {name:28} mio: {r['mio']:40} hyper: {r['hyper']}")
for s in ("mio","hyper"):
    rep = res["_report"][s]
    print(s, {k: rep.get(k) for k in ("served","refused","rejected","aborted","undelivered","leaked","connections_refused","panics")}, rep.get("outcomes"))
