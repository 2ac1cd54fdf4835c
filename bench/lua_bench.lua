-- Our binding under load, against a running dev server; the same file runs under Lua 5.4 and
-- under LuaJIT (a plain LuaJIT process, with the rock built by scripts/build-lua.sh luajit).
--
--   lua_bench.lua run TARGET MODE...      one RESULT line per MODE
--   lua_bench.lua count TARGET MODE...    BENCH_CALLS calls per MODE between two markers, for
--                                         bench/instructions.sh (prints PART lines)
--   lua_bench.lua rss TARGET CALLS        RSS before/after CALLS calls (small payload)
--   lua_bench.lua leak TARGET CALLS       CALLS calls, then close (for valgrind)
--   lua_bench.lua capture DIR             only write DIR/small.bin and DIR/real.bin (see below)
--
-- MODE is PAYLOAD:HOW[:noreply]: PAYLOAD small | real | realtext (bench/common.lua); HOW seq
-- (sync calls), seq+ (sync, with the async engine already running), or N (async, N in flight);
-- :noreply adds the call option reply = false (success is `true`, the reply is not decoded: the
-- same work as the C client without decoding). Every call goes through the public API:
-- client:put_external_event(req, opts), or put_external_event_async + client:poll + h:done() +
-- h:wait(), with the request as Lua tables (JSON content included) or, for realtext, the
-- content as lh.json_obj(text).
--
-- With BENCH_CAPTURE=DIR the process first writes its request bytes: DIR/small.bin, DIR/real.bin
-- (realtext is byte-identical to real), then an empty DIR/ready. TARGET is host:port, or @FILE
-- (needs BENCH_CAPTURE): after capturing, wait for FILE to appear, which holds "host:port
-- server_pid". bench/run.sh starts each round's Lua processes
-- that way so the C clients of the round, whatever their turn, send exactly these bytes (the JSON
-- key order is this process's own, see common.requests).
--
-- Environment: BENCH_SECONDS, BENCH_WARMUP, BENCH_SERVER_PID, BENCH_LABEL (as baseline.c),
-- BENCH_CALLS (count), BENCH_CAPTURE (above).
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local common = require "common"
local lh = require "littlehorse"
local core = lh.core

local function fail(what, err)
  io.stderr:write("lua_bench: ", what, ": ", tostring(err), "\n")
  os.exit(1)
end

local cmd, target = arg[1], arg[2]
if not (cmd and target) then
  io.stderr:write("usage: lua_bench.lua run|count|rss|leak TARGET ... | capture DIR\n")
  os.exit(2)
end
local REQ = common.requests(lh)
local RUNTIME = common.runtime()

local function capture(d)
  common.write_file(d .. "/small.bin", REQ.small.bytes)
  common.write_file(d .. "/real.bin", REQ.real.bytes)
  common.write_file(d .. "/ready", "")
end

if cmd == "capture" then
  capture(target)
  print(string.format("small: %d bytes, real: %d bytes (%d bytes of JSON): %s", #REQ.small.bytes,
                      #REQ.real.bytes, #REQ.realtext.text, REQ.realtext.text))
  os.exit(0)
end

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or 2
local WARMUP = tonumber(os.getenv("BENCH_WARMUP") or "") or 0.5
local SERVER_PID = tonumber(os.getenv("BENCH_SERVER_PID") or "")
local LABEL = os.getenv("BENCH_LABEL") or "1"

if os.getenv("BENCH_CAPTURE") then capture(os.getenv("BENCH_CAPTURE")) end
local go = target:match("^@(.*)$")
if go then
  if not os.getenv("BENCH_CAPTURE") then fail("capture", "BENCH_CAPTURE is not set") end
  local line
  repeat
    line = common.read_file(go)
    if not line then core.sleep(0.01) end
  until line
  local t, pid = line:match("^(%S+) (%d+)")
  if not t then fail("go file", line) end
  target, SERVER_PID = t, tonumber(pid)
end

local client = lh.client { target = target, tenant = common.TENANT, timeout = 10 }
local now, cpu = core.now, os.clock -- os.clock: CPU time of the whole process (all threads)
local NOREPLY = { reply = false }

-- The first async call starts the client's completion thread, which (measured) slows later
-- sync calls on the same client, so "seq" runs before it exists and "seq+" after; run.sh puts
-- the seq modes first.
local function parse_mode(m)
  local payload, how, suffix = m:match("^(%a+):([%d%a+]+):?(.*)$")
  if not (payload and REQ[payload]) or not (how == "seq" or how == "seq+" or tonumber(how))
      or not (suffix == "" or suffix == "noreply") then
    fail("bad mode", m)
  end
  local n = tonumber(how)
  return REQ[payload].req, payload, how, n and math.floor(n), suffix == "noreply" and NOREPLY or nil
end

-- Sequential sync calls for `seconds`; lat (optional) gets each call's latency.
local function run_seq(req, opts, seconds, lat)
  local put = client.put_external_event
  local errors, n = 0, 0
  local t0 = now()
  local deadline, t = t0 + seconds, t0
  repeat
    local s = now()
    local ev, err = put(client, req, opts)
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

-- N async calls in flight for `seconds`. Returns elapsed, errors, and the CPU readings taken at
-- the end of the window (the first completion past it; calls still in flight are drained).
local function run_async(req, opts, n, seconds, lat)
  local put_async = client.put_external_event_async
  local handles, started = {}, {}
  local errors, done_n, outstanding, stopping = 0, 0, 0, false
  local t0 = now()
  local deadline, t_end, cpu_end, srv_end, busy_end = t0 + seconds, nil, nil, nil, nil
  for i = 1, n do
    started[i] = now()
    handles[i] = put_async(client, req, opts)
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
      handles[i] = put_async(client, req, opts)
    end
  end
  while outstanding > 0 do
    client:poll(1)
    local t = now()
    for i = 1, n do
      local h = handles[i]
      if h and h:done() then complete(i, t) end
    end
  end
  return t_end - t0, errors, cpu_end, srv_end, busy_end
end

local function measure(m)
  local req, payload, how, n, opts = parse_mode(m)
  local sync = not n
  if sync then run_seq(req, opts, WARMUP) else run_async(req, opts, n, WARMUP) end
  collectgarbage("collect")
  local lat = {}
  local cpu0, srv0, busy0 = cpu(), common.proc_cpu(SERVER_PID), common.machine_cpu()
  local secs, errors, cpu1, srv1, busy1
  if sync then
    secs, errors, cpu1, srv1, busy1 = run_seq(req, opts, SECONDS, lat)
  else
    secs, errors, cpu1, srv1, busy1 = run_async(req, opts, n, SECONDS, lat)
  end
  table.sort(lat)
  print(string.format("RESULT client=%s%s payload=%s mode=%s inflight=%d rep=%s calls=%d errors=%d secs=%.6f "
                      .. "cpu=%.6f srv_cpu=%.6f p50_us=%.1f p99_us=%.1f busy=%.2f", RUNTIME,
                      opts and "-noreply" or "", payload, sync and (how == "seq+" and "seq+" or "seq") or "async",
                      n or 1, LABEL, #lat, errors, secs, cpu1 - cpu0, (srv0 and srv1) and srv1 - srv0 or -1,
                      common.quantile(lat, 0.5) * 1e6, common.quantile(lat, 0.99) * 1e6, busy1 - busy0))
  io.stdout:flush()
end

-- `count` calls, sync, or async with `n` in flight; raises on any failure.
local function calls(req, opts, count, n)
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

-- callgrind (bench/instructions.sh) dumps its counts on each call to remove(): os.remove.
local markers = 0
local function marker()
  os.remove("/nonexistent/lh-bench-marker")
  markers = markers + 1
end

local function int_arg(i, dflt)
  local v = tonumber(arg[i] or "")
  return v and math.floor(v) or dflt
end

if cmd == "run" then
  run_seq(REQ.small.req, nil, WARMUP) -- connect and warm up
  for i = 3, #arg do measure(arg[i]) end
  print(string.format("PROC client=%s cpu=%.3f", RUNTIME, cpu()))
elseif cmd == "count" then
  local total = tonumber(os.getenv("BENCH_CALLS") or "") or fail("count", "BENCH_CALLS is not set")
  calls(REQ.small.req, nil, 100) -- connect
  for i = 3, #arg do
    local req, payload, how, n, opts = parse_mode(arg[i])
    calls(req, opts, math.max(1, math.floor(total / 10)), n) -- warm-up
    marker()
    calls(req, opts, total, n)
    marker()
    print(string.format("PART %d client=%s%s payload=%s mode=%s inflight=%d calls=%d", markers, RUNTIME,
                        opts and "-noreply" or "", payload, n and "async" or how, n or 1, total))
  end
elseif cmd == "rss" then
  -- Half the calls sync and half async at 64 in flight.
  local req = REQ.small.req
  local total = int_arg(3, 1000000)
  local rss_start = common.rss_kib()
  calls(req, nil, 10000) -- warm-up: gRPC, the allocator and our scratch buffers reach their working size
  calls(req, nil, 10000, 64)
  collectgarbage("collect"); collectgarbage("collect")
  local before = common.rss_kib()
  local samples = {}
  local step = math.max(1, math.floor(total / 10))
  local t0, done = now(), 0
  while done < total do
    local k = math.min(step, total - done)
    if done >= math.floor(total / 2) then calls(req, nil, k, 64) else calls(req, nil, k) end
    done = done + k
    samples[#samples + 1] = string.format("%d:%d", done, common.rss_kib())
  end
  local secs = now() - t0
  collectgarbage("collect"); collectgarbage("collect")
  local after = common.rss_kib()
  print(string.format("RSS calls=%d kind=half-sync-half-async64 start_kib=%d before_kib=%d after_kib=%d growth_kib=%d "
                      .. "secs=%.1f samples=%s", total, rss_start, before, after, after - before, secs,
                      table.concat(samples, ",")))
elseif cmd == "leak" then
  local total = int_arg(3, 10000)
  local half = math.floor(total / 2)
  calls(REQ.small.req, nil, half)
  calls(REQ.real.req, nil, total - half, 64)
  -- handles garbage collected while in flight must cancel cleanly too
  for _ = 1, 16 do client:put_external_event_async(REQ.small.req) end
  collectgarbage("collect")
  client:close()
  print(string.format("LEAK calls=%d kind=sync+async", total))
else
  fail("unknown command", cmd)
end
