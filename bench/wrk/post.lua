-- POST with a fixed body (10 KiB by default), which the app echoes back.
-- Usage: wrk -t1 -c64 -d5s -s bench/wrk/post.lua http://127.0.0.1:8000/ -- 10240
--
-- wrk.format adds the Content-Length header; the body is built once in init,
-- so wrk spends no per-request time on it.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local req

function init(args)
   local size = tonumber(args[1]) or 10240
   local body = string.rep("x", size)
   req = wrk.format("POST", wrk.path,
                    { ["Content-Type"] = "application/octet-stream" }, body)
end

function request()
   return req
end
