-- qa12_mixed.lua: wrk pipelining a mix per write: GET /, a 1 KiB POST /echo, an OPTIONS *, a
-- 404 and a chunked upload with an extension and a trailer; wrk reads each answer with its own
-- parser (http-parser), so a bad length shows as an error. No HEAD: wrk's parser does not know
-- which request an answer is for, and reads a HEAD answer's content-length as a body.
local body = string.rep("q", 1024)
local chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
  "5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n"
local h = { Host = "x" }
local reqs = wrk.format("GET", "/", h) ..
  wrk.format("POST", "/echo", h, body) .. "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" ..
  wrk.format("GET", "/nope", h) .. chunked
function request()
  return reqs
end
