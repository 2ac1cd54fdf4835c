-- wrk script for bench/nginx/run.sh: optionally POSTs the file BENCH_BODY (JSON), and prints
-- one line when done: "WRK requests= secs= p50_us= p99_us= non2xx= errors=" (latency from wrk's
-- own histogram, per request on its connection).
local body_file = os.getenv("BENCH_BODY")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  f:close()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d secs=%.3f p50_us=%.1f p99_us=%.1f non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
