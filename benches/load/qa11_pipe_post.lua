-- wrk script: each request slot sends DEPTH pipelined POST /echo of SIZE bytes (env QA_DEPTH,
-- QA_SIZE), as benches/load/qa11_budget.sh runs it against the mio read budget.
local depth = tonumber(os.getenv("QA_DEPTH") or "4")
local size = tonumber(os.getenv("QA_SIZE") or "262144")
init = function(args)
   local body = string.rep("a", size)
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format("POST", "/echo", {["Host"] = "x", ["Content-Length"] = size}, body)
   end
   req = table.concat(r)
end
request = function()
   return req
end
