-- The outbox's figures (bench/run.sh runs it; also alone: lua5.4 bench/outbox_bench.lua
-- DEVSERVER DIR [SECONDS] [REPS]). Per round, against fresh dev servers (--threads 1):
--   accept:   durable posts per second from one process: post_async with 256 queued, each
--             acknowledged only once stored and fsync'd (commits grouped by the writer thread);
--   post:     the same one post() at a time (each post waits for its own commit and fsync):
--             the baseline that shows what grouping buys;
--   deliver:  records delivered per second by drain() (64 calls in flight, each record's own
--             stored bytes and guid, outcomes recorded in the file);
--   direct:   put_external_event_async, 64 in flight, reply = false: the same requests posted
--             directly, the baseline delivery is measured against;
--   ordered:  drain() of an ordered outbox holding 1,000 records of one WfRun, which go out one
--             after another; against one process posting the same requests one call at a time
--             (put_external_event, reply = false), the best such an order allows;
--   shared:   one file, two processes (bench/outbox_poster.lua) each posting one post() at a
--             time (two nginx workers on one outbox): the slowest post and the p99, against
--             one such process alone on its own file in the same round. Locks pass between
--             the two writers; waiting for one must cost about as long as it is held.
-- The outbox file lives in DIR (on disk: a tmpfs would make fsync free). Prints OUTBOX raw lines
-- and a table with the medians, the per-round ratios' median and their min-max.
local lh = require "littlehorse"
local core = require "littlehorse.core"
package.path = "bench/?.lua;" .. package.path
local common = require "common"

local BIN, DIR = arg[1], arg[2]
local SECONDS = tonumber(arg[3] or os.getenv("BENCH_SECONDS") or "1")
local REPS = math.tointeger(tonumber(arg[4] or os.getenv("BENCH_REPS") or "5"))
assert(BIN and DIR, "usage: outbox_bench.lua DEVSERVER DIR [SECONDS] [REPS]")
local PIN = os.getenv("BENCH_PIN") ~= "0" and "taskset -c 1 " or ""
local now = core.now

local function start_server() return common.start_devserver(BIN, DIR .. "/server.out", PIN, core.sleep) end
local stop_server = common.stop_devserver

local function request()
  return { wf_run_id = common.WF_RUN_ID, external_event_def_name = common.DEF_NAME, content = common.real_content() }
end

-- post_async with `queued` jobs outstanding for SECONDS: stored posts per second.
local function accept(ob, queued)
  local jobs, first, last = {}, 1, 0
  local n, t0 = 0, now()
  local deadline = t0 + SECONDS
  while true do
    while last - first + 1 < queued do
      last = last + 1
      jobs[last] = ob:post_async(request())
    end
    local g, err = jobs[first]:wait()
    jobs[first] = nil
    first = first + 1
    assert(g, tostring(err))
    n = n + 1
    if now() >= deadline then break end
  end
  local t = now() - t0
  for i = first, last do assert(jobs[i]:wait()) end
  return n / t
end

local function sequential(ob)
  local n, t0 = 0, now()
  local deadline = t0 + SECONDS
  repeat
    assert(ob:post(request()))
    n = n + 1
  until now() >= deadline
  return n / (now() - t0)
end

-- 64 direct async calls in flight for SECONDS: calls per second.
local function direct(port)
  local client = lh.client { host = "127.0.0.1", port = port, timeout = 10, config_file = false }
  local n, inflight, stopping = 0, 0, false
  local t0 = now()
  local deadline, t_end = t0 + SECONDS, nil
  local start
  local function on_done(ok, err)
    assert(ok, tostring(err))
    inflight = inflight - 1
    if not stopping then
      n = n + 1
      if now() >= deadline then stopping, t_end = true, now() else start() end
    end
  end
  local opts = { reply = false, on_done = on_done }
  function start()
    inflight = inflight + 1
    assert(client:put_external_event_async(request(), opts))
  end
  for _ = 1, 64 do start() end
  while inflight > 0 do client:poll(1) end
  client:close()
  return n / (t_end - t0)
end

-- `procs` processes posting into one new file for SECONDS: their slowest post and worst p99 (ms)
local function shared(path, procs)
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
  assert(lh.outbox(path)):close()
  local lua = arg[-1] or "lua5.4"
  local cmd = {}
  for i = 1, procs do cmd[i] = string.format("%s bench/outbox_poster.lua %s %g", lua, path, SECONDS) end
  local p = io.popen("(" .. table.concat(cmd, " & ") .. " & wait) 2>&1")
  local out = p:read("*a")
  p:close()
  local worst_max, worst_p99, n = 0, 0, 0
  for posts, p99, max in out:gmatch("POSTER posts=(%d+) p99_ms=([%d.]+) max_ms=([%d.]+)") do
    n = n + 1
    worst_max, worst_p99 = math.max(worst_max, tonumber(max)), math.max(worst_p99, tonumber(p99))
    assert(tonumber(posts) > 0)
  end
  assert(n == procs, "a poster failed: " .. out)
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
  return worst_max, worst_p99
end

-- 1,000 records of one WfRun in an ordered outbox: records delivered per second by drain()
local function ordered(path, port)
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
  local client = lh.client { host = "127.0.0.1", port = port, timeout = 10, config_file = false }
  local ob = assert(lh.outbox(path, { client = client, ordered = true, max_rows = 0, max_bytes = 0 }))
  local jobs = {}
  for i = 1, 1000 do jobs[i] = ob:post_async(request()) end
  for i = 1, 1000 do assert(jobs[i]:wait()) end
  local t0 = now()
  local c = ob:drain(120)
  local t = now() - t0
  assert(c.pending == 0 and c.delivered == 1000, "drain left records: " .. c.pending)
  ob:close()
  client:close()
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
  return 1000 / t
end

-- The same requests, one call at a time: calls per second
local function one_at_a_time(port)
  local client = lh.client { host = "127.0.0.1", port = port, timeout = 10, config_file = false }
  local opts = { reply = false }
  local t0 = now()
  for _ = 1, 1000 do assert(client:put_external_event(request(), opts)) end
  local t = now() - t0
  client:close()
  return 1000 / t
end

local function deliver(path, port)
  local client = lh.client { host = "127.0.0.1", port = port, timeout = 10, config_file = false }
  local ob = assert(lh.outbox(path, { client = client, max_rows = 0, max_bytes = 0 }))
  local pending = ob:stats().pending
  local t0 = now()
  local c = ob:drain(120)
  local t = now() - t0
  assert(c.pending == 0 and c.delivered == pending, "drain left records: " .. c.pending)
  ob:close()
  client:close()
  return pending / t, pending
end

local rows = { accept = {}, post = {}, deliver = {}, direct = {}, ordered = {}, sequential = {}, one_max = {}, one_p99 = {}, two_max = {}, two_p99 = {} }
local ratios = { grouping = {}, delivery = {}, ordered = {}, shared = {} }
for rep = 1, REPS do
  local path = string.format("%s/outbox.%d.db", DIR, rep)
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
  local ob = assert(lh.outbox(path, { max_rows = 0, max_bytes = 0 }))
  local a = accept(ob, 256)
  local p = sequential(ob)
  ob:close()
  local pid, port = start_server()
  local d, count = deliver(path, port)
  stop_server(pid)
  pid, port = start_server()
  local x = direct(port)
  stop_server(pid)
  pid, port = start_server()
  local o = ordered(path .. ".ordered", port)
  stop_server(pid)
  pid, port = start_server()
  local q = one_at_a_time(port)
  stop_server(pid)
  local m1, q1 = shared(path .. ".one", 1)
  local m2, q2 = shared(path .. ".two", 2)
  print(string.format("OUTBOX rep=%d shared: one max=%.2fms p99=%.2fms two max=%.2fms p99=%.2fms", rep, m1, q1, m2, q2))
  table.insert(rows.one_max, m1); table.insert(rows.one_p99, q1)
  table.insert(rows.two_max, m2); table.insert(rows.two_p99, q2)
  table.insert(ratios.shared, m2 / m1)
  print(string.format("OUTBOX rep=%d accept=%.0f post=%.0f deliver=%.0f delivered=%d direct=%.0f ordered=%.0f sequential=%.0f",
                      rep, a, p, d, count, x, o, q))
  io.stdout:flush()
  table.insert(rows.accept, a); table.insert(rows.post, p); table.insert(rows.deliver, d); table.insert(rows.direct, x)
  table.insert(ratios.grouping, a / p); table.insert(ratios.delivery, d / x)
  table.insert(rows.ordered, o); table.insert(rows.sequential, q); table.insert(ratios.ordered, o / q)
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
end

local median, spread = common.median, common.minmax

print(string.format("Outbox (%d rounds of %g s; file on disk, fsync on; real payload)", REPS, SECONDS))
print(string.format("  %-52s %10s %19s", "figure", "median/s", "min-max"))
-- fmt: how the median and the min-max print (rates per second, or milliseconds)
local RATE, MS = "  %-52s %10.0f %9.0f-%-9.0f", "  %-52s %8.2fms %8.2f-%-8.2f"
local function row(label, xs, fmt)
  local lo, hi = spread(xs)
  print(string.format(fmt or RATE, label, median(xs), lo, hi))
end
row("accept: durable posts, post_async, 256 queued", rows.accept)
row("post: durable posts, one post() at a time", rows.post)
row("deliver: drain(), 64 calls in flight", rows.deliver)
row("direct: put_external_event_async, 64 in flight", rows.direct)
row("ordered: drain(), 1,000 records of one WfRun", rows.ordered)
row("one at a time: put_external_event, reply = false", rows.sequential)
row("one process, post() at a time: slowest post", rows.one_max, MS)
row("one process, post() at a time: p99 post", rows.one_p99, MS)
row("two processes, one file: slowest post", rows.two_max, MS)
row("two processes, one file: p99 post", rows.two_p99, MS)
local function ratio(label, xs, target)
  local lo, hi = spread(xs)
  local m = median(xs)
  print(string.format("  %-52s %9.2fx %8.2f-%-8.2f %s", label, m, lo, hi,
                      target and (m >= target and "PASS" or "FAIL") .. " (target " .. target .. ")" or ""))
end
ratio("grouping: accept / post", ratios.grouping)
ratio("delivery: deliver / direct", ratios.delivery, 0.8)
ratio("ordered: one WfRun / one call at a time", ratios.ordered)
ratio("shared: slowest post, two processes / one", ratios.shared)
local am = median(rows.accept)
print(string.format("  %-52s %10.0f %19s %s", "accept target: >= 10000 durable posts/s", am, "",
                    am >= 10000 and "PASS" or "FAIL"))
