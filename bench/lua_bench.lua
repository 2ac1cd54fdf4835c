-- Our Lua 5.4 binding under load, against a running dev server.
--
--   lua5.4 bench/lua_bench.lua run  TARGET REQUEST.bin MODE...   MODE: seq | N (async, N in flight)
--                                                                  | seq+ (sync, async engine running)
--                                                                  | seq:noreply | N:noreply (the call
--                                                                    option reply = false: the
--                                                                    reply is not decoded, as in
--                                                                    the C baseline)
--   lua5.4 bench/lua_bench.lua rss  TARGET REQUEST.bin CALLS     RSS before/after CALLS calls
--   lua5.4 bench/lua_bench.lua leak TARGET REQUEST.bin CALLS     CALLS calls, then close (for valgrind)
--   lua5.4 bench/lua_bench.lua count TARGET REQUEST.bin CALLS MODE   CALLS calls (bench/instructions.sh)
--
-- Every call goes through the public API: client:put_external_event(req) with the request as a
-- Lua table (so each call converts the table, JSON content included), and, when the async API
-- exists (issue 6), client:put_external_event_async(req) with h:done()/h:wait()/client:poll().
-- The table's encoding is checked to be byte-identical to REQUEST.bin (what the other clients
-- send); if this process's hash seed orders the JSON keys differently, "run" and "rss" exit 3
-- before doing anything and run.sh starts them again.
--
-- Environment: BENCH_SECONDS, BENCH_WARMUP, BENCH_SERVER_PID, BENCH_LABEL (as baseline.c);
-- BENCH_LUA_ASYNC_STYLE = poll (default: client:poll(t) then h:done() on each slot) or wait
-- (h:wait() on the oldest call).
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local common = require "common"
local lh = require "littlehorse"
local core = lh.core

local cmd, target, req_file = arg[1], arg[2], arg[3]
if not (cmd and target and req_file) then
  io.stderr:write("usage: lua_bench.lua run|rss|leak TARGET REQUEST.bin ...\n")
  os.exit(2)
end
local want = assert(common.read_file(req_file), "cannot read " .. req_file)
local req, exact = common.request(core, want)
if not exact and cmd ~= "leak" then os.exit(common.EXIT_RETRY) end

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or 2
local WARMUP = tonumber(os.getenv("BENCH_WARMUP") or "") or 0.5
local SERVER_PID = tonumber(os.getenv("BENCH_SERVER_PID") or "")
local LABEL = os.getenv("BENCH_LABEL") or "1"
local STYLE = os.getenv("BENCH_LUA_ASYNC_STYLE") or "poll"

local host, port = target:match("^(.*):(%d+)$")
local client = lh.client { host = host, port = math.tointeger(tonumber(port)), tenant = common.TENANT, timeout = 10 }
local now, cpu = core.now, os.clock -- os.clock: CPU time of the whole process (all threads)

-- The async API (issue 6) is measured only if it exists and one call through it works. The
-- probe runs lazily, just before the first async measurement: the first async call starts the
-- client's completion thread, which (measured) slows later sync calls on the same client, so
-- "seq" is measured before it exists and "seq+" (sync calls with it running) after.
local ASYNC_REASON, HAS_ASYNC
local function async_ready()
  if HAS_ASYNC ~= nil then return HAS_ASYNC end
  if type(client.put_external_event_async) ~= "function" then
    ASYNC_REASON = "async API not built yet"
  elseif os.getenv("BENCH_LUA_NO_ASYNC") == "1" then
    ASYNC_REASON = "skipped (BENCH_LUA_NO_ASYNC=1)"
  else
    local ok, err = pcall(function()
      local h = client:put_external_event_async(req)
      local ev, e = h:wait(10)
      if not ev then error(e == nil and "no reply within 10 s" or tostring(e), 0) end
    end)
    if not ok then ASYNC_REASON = "async API raised: " .. tostring(err):gsub("%s*\n.*", "") end
  end
  HAS_ASYNC = ASYNC_REASON == nil
  return HAS_ASYNC
end

local function fail(what, err)
  io.stderr:write("lua_bench: ", what, ": ", tostring(err), "\n")
  os.exit(1)
end

-- Sequential sync calls for `seconds`; lat (optional) gets each call's latency.
-- Call options of the runs: nil, or { reply = false } for the ":noreply" modes.
local OPTS

local function run_seq(seconds, lat)
  local put = client.put_external_event
  local errors, n = 0, 0
  local t0 = now()
  local deadline, t = t0 + seconds, t0
  repeat
    local s = now()
    local ev, err = put(client, req, OPTS)
    t = now()
    if ev then
      n = n + 1
      if lat then lat[n] = t - s end
    else
      errors = errors + 1
      if errors == 1 and os.getenv("BENCH_VERBOSE") then io.stderr:write(tostring(err), "\n") end
    end
  until t >= deadline
  return t - t0, errors, cpu(), common.proc_cpu(SERVER_PID), common.machine_cpu()
end

-- N async calls in flight for `seconds` (issue 6's API). Returns elapsed, errors, and the CPU
-- readings taken at the end of the window (before the calls still in flight are drained).
local function run_async(n, seconds, lat)
  local put_async = client.put_external_event_async
  local handles, started = {}, {}
  local errors, done_n, outstanding, stopping = 0, 0, 0, false
  local t0 = now()
  local deadline, t_end, cpu_end, srv_end, busy_end = t0 + seconds, nil, nil, nil, nil
  for i = 1, n do
    started[i] = now()
    handles[i] = put_async(client, req, OPTS)
    outstanding = outstanding + 1
  end
  local function complete(i, t)
    local ev, err = handles[i]:wait()
    if not stopping then
      if ev then
        done_n = done_n + 1
        if lat then lat[done_n] = t - started[i] end
      else
        errors = errors + 1
        if errors == 1 and os.getenv("BENCH_VERBOSE") then io.stderr:write(tostring(err), "\n") end
      end
      if t >= deadline then
        stopping, t_end, cpu_end, srv_end = true, t, cpu(), common.proc_cpu(SERVER_PID)
        busy_end = common.machine_cpu()
      end
    end
    if stopping then
      handles[i] = nil
      outstanding = outstanding - 1
    else
      started[i] = now()
      handles[i] = put_async(client, req, OPTS)
    end
  end
  if STYLE == "wait" then
    -- oldest first: slots are reused in order, so slot k is the oldest after slot k-1
    local k = 0
    while outstanding > 0 do
      k = k % n + 1
      if handles[k] then complete(k, now()) end
    end
  else
    while outstanding > 0 do
      client:poll(1)
      local t = now()
      for i = 1, n do
        local h = handles[i]
        if h and h:done() then complete(i, t) end
      end
    end
  end
  return t_end - t0, errors, cpu_end, srv_end, busy_end
end

local function measure(mode, n)
  if mode ~= "seq" and not async_ready() then
    print(string.format("NA client=lua mode=%s inflight=%d rep=%s reason=%s", mode, n, LABEL, ASYNC_REASON))
    return
  end
  local sync = mode ~= "async"
  if sync then run_seq(WARMUP) else run_async(n, WARMUP) end
  collectgarbage("collect")
  local lat = {}
  local cpu0, srv0, busy0 = cpu(), common.proc_cpu(SERVER_PID), common.machine_cpu()
  local secs, errors, cpu1, srv1, busy1
  if sync then
    secs, errors, cpu1, srv1, busy1 = run_seq(SECONDS, lat)
  else
    secs, errors, cpu1, srv1, busy1 = run_async(n, SECONDS, lat)
  end
  table.sort(lat)
  print(string.format("RESULT client=%s mode=%s inflight=%d rep=%s calls=%d errors=%d secs=%.6f cpu=%.6f "
                      .. "srv_cpu=%.6f p50_us=%.1f p99_us=%.1f busy=%.2f", OPTS and "lua-noreply" or "lua", mode, n, LABEL, #lat, errors, secs, cpu1 - cpu0,
                      (srv0 and srv1) and srv1 - srv0 or -1,
                      common.quantile(lat, 0.5) * 1e6, common.quantile(lat, 0.99) * 1e6, busy1 - busy0))
  io.stdout:flush()
end

-- `count` calls, sync, or async with `n` in flight; raises on any failure.
local function calls(count, n, opts)
  local put = client.put_external_event
  if not n then
    for _ = 1, count do
      local ev, err = put(client, req, opts)
      if not ev then fail("call", err) end
    end
    return
  end
  local put_async = client.put_external_event_async
  local handles, issued = {}, 0
  for i = 1, math.min(n, count) do handles[i] = put_async(client, req, opts); issued = issued + 1 end
  local live = #handles
  while live > 0 do
    client:poll(1)
    for i = 1, n do
      local h = handles[i]
      if h and h:done() then
        local ev, err = h:wait()
        if not ev then fail("async call", err) end
        if issued < count then
          handles[i] = put_async(client, req, opts)
          issued = issued + 1
        else
          handles[i] = nil
          live = live - 1
        end
      end
    end
  end
end

if cmd == "run" then
  run_seq(WARMUP) -- connect and warm up
  for i = 4, #arg do
    local m, suffix = arg[i]:match("^([^:]*):?(.*)$")
    OPTS = suffix == "noreply" and { reply = false } or nil
    if m == "seq" or m == "seq+" then
      measure(m, 1)
    else
      local n = assert(math.tointeger(tonumber(m)), "bad mode " .. m)
      local ok, err = pcall(measure, "async", n)
      if not ok then
        print(string.format("NA client=lua mode=async inflight=%d rep=%s reason=async run raised: %s", n, LABEL,
                            tostring(err):gsub("%s*\n.*", "")))
      end
    end
  end
  print(string.format("PROC client=lua cpu=%.3f", cpu()))
elseif cmd == "rss" then
  -- Half the calls sync and half async at 64 in flight when the async API exists, else all sync.
  local total = math.tointeger(tonumber(arg[4])) or 1000000
  local rss_start = common.rss_kib()
  async_ready()
  calls(10000) -- warm-up: gRPC, the allocator and our scratch buffers reach their working size
  if HAS_ASYNC then calls(10000, 64) end
  collectgarbage("collect"); collectgarbage("collect")
  local before = common.rss_kib()
  local samples = {}
  local step = math.max(1, total // 10)
  local t0, done = now(), 0
  while done < total do
    local k = math.min(step, total - done)
    if HAS_ASYNC and done >= total // 2 then calls(k, 64) else calls(k) end
    done = done + k
    samples[#samples + 1] = string.format("%d:%d", done, common.rss_kib())
  end
  local secs = now() - t0
  collectgarbage("collect"); collectgarbage("collect")
  local after = common.rss_kib()
  if not HAS_ASYNC then print("RSSNOTE " .. ASYNC_REASON) end
  print(string.format("RSS calls=%d kind=%s start_kib=%d before_kib=%d after_kib=%d growth_kib=%d secs=%.1f samples=%s",
                      total, HAS_ASYNC and "half-sync-half-async64" or "sync", rss_start, before, after,
                      after - before, secs, table.concat(samples, ",")))
elseif cmd == "count" then
  -- CALLS calls in MODE (seq | N [:noreply]), nothing printed but a check: for
  -- bench/instructions.sh, which counts the instructions of two such runs under callgrind.
  local total = assert(math.tointeger(tonumber(arg[4])), "count: CALLS expected")
  local m, suffix = (arg[5] or "seq"):match("^([^:]*):?(.*)$")
  local opts = suffix == "noreply" and { reply = false } or nil
  if m ~= "seq" then async_ready() end
  calls(total, m ~= "seq" and assert(math.tointeger(tonumber(m)), "bad mode " .. m) or nil, opts)
  print(string.format("COUNT calls=%d mode=%s", total, arg[5] or "seq"))
elseif cmd == "leak" then
  local total = math.tointeger(tonumber(arg[4])) or 10000
  if async_ready() then
    calls(total // 2)
    calls(total - total // 2, 64)
    -- handles garbage collected while in flight must cancel cleanly too
    for _ = 1, 16 do client:put_external_event_async(req) end
    collectgarbage("collect")
  else
    calls(total)
  end
  client:close()
  print(string.format("LEAK calls=%d kind=%s exact_bytes=%s", total, HAS_ASYNC and "sync+async" or "sync",
                      tostring(exact)))
  if not HAS_ASYNC then print("LEAKNOTE " .. ASYNC_REASON) end
else
  io.stderr:write("lua_bench: unknown command ", tostring(cmd), "\n")
  os.exit(2)
end
