-- The soak driver (run by scripts/soak.sh): mixed calls for SOAK_SECONDS against a dev server
-- that fails a share of PutExternalEvent replies, sampling this process's RSS and open file
-- descriptors every SOAK_INTERVAL seconds, then judging whether both stayed flat.
--   lua5.4 scripts/soak.lua PORT DEF DEAD_PORT
-- Prints one "sample" line per interval, a summary of outcomes, and "soak: PASS" or
-- "soak: FAIL (...)"; exits 0 on PASS, 1 on FAIL.
local lh = require "littlehorse"
local core = require "littlehorse.core"

local PORT, DEF, DEAD_PORT = tonumber(arg[1]), arg[2], tonumber(arg[3])
local SECONDS = tonumber(os.getenv("SOAK_SECONDS") or "3600")
local INTERVAL = tonumber(os.getenv("SOAK_INTERVAL") or "10")
-- Allowed growth from the first steady quarter to the last one.
local RSS_SLACK_KB = tonumber(os.getenv("SOAK_RSS_SLACK_KB") or "8192")
local RSS_SLACK_PCT = tonumber(os.getenv("SOAK_RSS_SLACK_PCT") or "10")
local FD_SLACK = tonumber(os.getenv("SOAK_FD_SLACK") or "2")

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local PID = read_file("/proc/self/stat"):match("^%d+")

local function rss_kb() return tonumber(read_file("/proc/" .. PID .. "/status"):match("VmRSS:%s*(%d+)")) end
local function open_fds()
  local p = io.popen("ls /proc/" .. PID .. "/fd | wc -l") -- the pipe itself adds one, every time
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

math.randomseed(tonumber(os.getenv("SOAK_SEED") or os.time()))
local counts = {}
local function count(what) counts[what] = (counts[what] or 0) + 1 end
local function outcome(kind, ev, err, code)
  if ev then count(kind .. " ok") else count(kind .. " " .. tostring(code)) end
end

local function new_client(timeout) return lh.client { host = "127.0.0.1", port = PORT, timeout = timeout or 5 } end
local client = new_client()
local stored = {}     -- ids of stored events, for gets (a ring)
local seq = 0

local function content()
  local r = math.random(8)
  if r == 1 then return { user = { name = "ada", tags = { "a", "b", "c" } }, n = seq, ok = true } end
  if r == 2 then local t = {} for i = 1, math.random(50) do t[i] = i * 1.5 end return t end
  if r == 3 then return lh.bytes(core.random_bytes(math.random(0, 2048))) end
  if r == 4 then return string.rep("é", math.random(0, 500)) end
  if r == 5 then return lh.array { 1, "two", lh.map { { "k", 3.5 } } } end
  if r == 6 then return lh.timestamp(os.time()) end
  if r == 7 then return seq end
  return nil
end

local function req()
  seq = seq + 1
  return { wf_run_id = "soak-" .. seq, external_event_def_name = DEF, content = content() }
end

local function remember(ev)
  if ev then stored[#stored % 1000 + 1] = ev.id end
end

local ops = {
  { 35, "put", function()
    local ev, err, code = client:put_external_event(req())
    outcome("put", ev, err, code); remember(ev)
  end },
  { 15, "put+retry", function()
    local ev, err, code = client:put_external_event(req(), { retry = { attempts = 6, initial_backoff = 0.005, max_backoff = 0.05 } })
    outcome("put+retry", ev, err, code); remember(ev)
  end },
  { 10, "get", function()
    local id = stored[math.random(math.max(1, #stored))]
    if not id then return end
    outcome("get", client:get_external_event(id))
  end },
  { 5, "def", function()
    local name = "soak-def-" .. math.random(20)
    outcome("put_def", client:put_external_event_def(name))
    outcome("get_def", client:get_external_event_def(name))
  end },
  { 15, "async", function()
    if not client.put_external_event_async then return end
    local hs = {}
    for i = 1, 10 do hs[i] = client:put_external_event_async(req(), { timeout = 5 }) end
    if math.random(4) == 1 then hs[10]:cancel() end
    if math.random(4) == 1 then hs[9] = nil end -- dropped in flight: collected, cancelled
    for i = 1, 8 do local ev, err, code = hs[i]:wait(); outcome("async", ev, err, code); remember(ev) end
  end },
  { 5, "misuse", function()
    local bad = { { wf_run_id = 1, external_event_def_name = DEF }, { wf_run_id = "x", external_event_def_name = DEF, content = print },
                  { wf_run_id = "x", external_event_def_name = DEF, content = { 1, nil, 3 } }, "nope" }
    local ok = pcall(client.put_external_event, client, bad[math.random(#bad)])
    count(ok and "misuse NOT RAISED" or "misuse raised")
  end },
  { 5, "churn", function()
    local c = new_client()
    for _ = 1, 3 do local ev, err, code = c:put_external_event(req()); outcome("churn", ev, err, code) end
    if math.random(2) == 1 then c:close() end -- else left to __gc
  end },
  { 5, "dead", function()
    local c = lh.client { host = "127.0.0.1", port = DEAD_PORT, timeout = 0.2 }
    outcome("dead", c:put_external_event(req()))
    c:close()
  end },
  { 5, "gc", function() collectgarbage() end },
}
local total = 0
for _, op in ipairs(ops) do total = total + op[1] end
local function pick()
  local r = math.random(total)
  for _, op in ipairs(ops) do
    r = r - op[1]
    if r <= 0 then return op end
  end
end

local samples = {}
local function sample(t)
  collectgarbage() -- RSS of the C side, not of uncollected Lua garbage
  local s = { t = t, rss = rss_kb(), fds = open_fds(), lua_kb = math.floor(collectgarbage("count")) }
  samples[#samples + 1] = s
  print(string.format("sample t=%5ds rss=%7d KB fds=%4d lua=%6d KB calls=%d", t, s.rss, s.fds, s.lua_kb, seq))
  io.stdout:flush()
end

local t0 = core.now()
local next_sample = 0
while true do
  local t = core.now() - t0
  if t >= next_sample then
    sample(math.floor(t + 0.5))
    next_sample = next_sample + INTERVAL
  end
  if t >= SECONDS then break end
  local op = pick()
  local ok, e = pcall(op[3])
  if not ok then count(op[2] .. " RAISED: " .. tostring(e):sub(1, 120)) end
end
client:close()

local keys = {}
for k in pairs(counts) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do print(string.format("  %-60s %d", k, counts[k])) end

-- Flatness: the first 20% of the samples are warm-up (caches, arenas, gRPC's pools grow to
-- their working size). Of the rest, compare the last quarter with the first quarter.
local steady = {}
for i = math.floor(#samples * 0.2) + 1, #samples do steady[#steady + 1] = samples[i] end
if #steady < 4 then
  print(string.format("soak: FAIL (only %d steady samples: run longer or sample more often)", #steady))
  os.exit(1)
end
local q = math.max(1, #steady // 4)
local function stat(from, to, field, f)
  local v = steady[from][field]
  for i = from + 1, to do v = f(v, steady[i][field]) end
  return v
end
local rss_first = stat(1, q, "rss", math.max)
local rss_last = stat(#steady - q + 1, #steady, "rss", math.max)
local fds_first = stat(1, q, "fds", math.max)
local fds_last = stat(#steady - q + 1, #steady, "fds", math.max)
local rss_growth = rss_last - rss_first
local allowed = math.max(RSS_SLACK_KB, rss_first * RSS_SLACK_PCT / 100)
local unexpected = 0
for k, n in pairs(counts) do if k:find("RAISED") or k:find("NOT RAISED") then unexpected = unexpected + n end end
print(string.format("rss: first steady quarter max %d KB, last quarter max %d KB, growth %+d KB (allowed %d)",
                    rss_first, rss_last, rss_growth, allowed))
print(string.format("fds: first steady quarter max %d, last quarter max %d (allowed +%d)", fds_first, fds_last, FD_SLACK))
local why = {}
if rss_growth > allowed then why[#why + 1] = "RSS grew" end
if fds_last > fds_first + FD_SLACK then why[#why + 1] = "open fds grew" end
if unexpected > 0 then why[#why + 1] = unexpected .. " unexpected raises" end
if (counts["put ok"] or 0) == 0 then why[#why + 1] = "no call succeeded" end
if #why == 0 then
  print(string.format("soak: PASS (%d calls in %d s; RSS and fds flat)", seq, SECONDS))
else
  print("soak: FAIL (" .. table.concat(why, ", ") .. ")")
  os.exit(1)
end
