-- Plain GET of the URL given on the command line, plus the shared report.
-- Usage: wrk -t1 -c64 -d5s -s bench/wrk/get.lua http://127.0.0.1:8000/

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
