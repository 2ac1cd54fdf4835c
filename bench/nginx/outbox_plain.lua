-- The outbox webhook handler's work without nginx: a plain LuaJIT process (nginx's VM) that
-- decodes the body and posts it into an outbox file, `queued` posts outstanding (post_async,
-- each acknowledged only once committed and fsync'd), for the outbox row of the nginx
-- benchmark (bench/nginx/run.sh): the one-process baseline nginx's durable webhooks are
-- compared with.
--   luajit bench/nginx/outbox_plain.lua OUTBOX.db BODY.json QUEUED
-- prints "OBPLAIN posts= secs= errors=". Environment: BENCH_SECONDS, BENCH_WARMUP.
local lh = require "littlehorse"
local path, body_file, queued = arg[1], arg[2], tonumber(arg[3] or "")
assert(path and body_file and queued, "usage: outbox_plain.lua OUTBOX.db BODY.json QUEUED")
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or 2
local WARMUP = tonumber(os.getenv("BENCH_WARMUP") or "") or 0.5
local now = lh.core.now
local ob = assert(lh.outbox(path, { max_rows = 0, max_bytes = 0 }))

-- what the webhook location does per request (examples/nginx/outbox.conf), minus nginx
local function post()
  return ob:post_async { wf_run_id = "bench-nginx", external_event_def_name = "webhook-event",
                         content = lh.json_decode(body) }
end

-- `queued` posts outstanding for `seconds`: posts acknowledged, seconds, failures.
local function run(seconds)
  local jobs, first, last = {}, 1, 0
  local n, errors, t0 = 0, 0, now()
  local t = t0
  while true do
    while last - first + 1 < queued do
      last = last + 1
      jobs[last] = post()
    end
    local g = jobs[first]:wait()
    jobs[first] = nil
    first = first + 1
    if g then n = n + 1 else errors = errors + 1 end
    t = now()
    if t - t0 >= seconds then break end
  end
  for i = first, last do jobs[i]:wait() end -- not counted: acknowledged after the window
  return n, t - t0, errors
end

run(WARMUP)
collectgarbage("collect")
local n, secs, errors = run(SECONDS)
print(string.format("OBPLAIN posts=%d secs=%.3f errors=%d", n, secs, errors))
ob:close()
