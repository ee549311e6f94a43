-- HTTP/1.1 pipelining: each connection writes DEPTH GETs in one go and waits
-- for all DEPTH responses before sending the next batch.
-- Usage: wrk -t1 -c64 -d5s -s bench/wrk/pipeline.lua http://127.0.0.1:8000/ -- 16
--
-- Caveat: wrk records one latency sample per batch (send of the batch to the
-- last response), so p50/p99 here are per batch of DEPTH, not per request;
-- the request count is still per response.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local batch

function init(args)
   local depth = tonumber(args[1]) or 16
   local one = wrk.format("GET", wrk.path)
   batch = string.rep(one, depth)
end

function request()
   return batch
end
