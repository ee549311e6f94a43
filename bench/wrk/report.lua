-- Shared by the scenario scripts (loaded with dofile, see below): prints one
-- machine-readable line that bench/http.py parses, so it does not have to
-- scrape wrk's human-oriented text (units vary: us, ms, s).
-- Latency values are microseconds, as wrk records them.

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9),
      latency.mean, latency.max))
end
