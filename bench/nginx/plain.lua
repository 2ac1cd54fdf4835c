-- The nginx example's /event handler code without nginx: a plain Lua process (run under
-- LuaJIT, nginx's VM) making the same calls one after the other, for the nginx rows of
-- `make bench` (bench/nginx/run.sh). Per call: lh.json_decode(body), client:post_event(...)
-- with the handler's options, lh.json_encode of the reply, as examples/nginx/nginx.conf does.
--   luajit bench/nginx/plain.lua TARGET BODY.json     prints "PLAIN calls= secs= p50_us= p99_us= errors="
-- Environment: BENCH_SECONDS, BENCH_WARMUP.
local lh = require "littlehorse"
local target, body_file = arg[1], arg[2]
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or 2
local WARMUP = tonumber(os.getenv("BENCH_WARMUP") or "") or 0.5
local now = lh.core.now
local client = lh.client { target = target, timeout = 5 }

local function handler()
  local content = lh.json_decode(body)
  local ev, err = client:post_event("bench-nginx", "nginx-event", content, { retry = { deadline = 10 } })
  if not ev then return nil, err end
  return lh.json_encode { guid = ev.id.guid, created_at = tostring(ev.created_at), content = ev.content }
end

local function run(seconds, lat)
  local errors = 0
  local t0 = now()
  local t = t0
  repeat
    local s = now()
    local out = handler()
    t = now()
    if out then lat[#lat + 1] = t - s else errors = errors + 1 end
  until t - t0 >= seconds
  return t - t0, errors
end

run(WARMUP, {})
collectgarbage("collect")
local lat = {}
local secs, errors = run(SECONDS, lat)
table.sort(lat)
local function q(p) return #lat > 0 and lat[math.floor(p * (#lat - 1)) + 1] or 0 end
print(string.format("PLAIN calls=%d secs=%.3f p50_us=%.1f p99_us=%.1f errors=%d", #lat, secs, q(0.5) * 1e6,
                    q(0.99) * 1e6, errors))
client:close()
