-- What the outbox's reading and dead-letter calls cost as the file grows (bench/run.sh runs it;
-- also alone: lua5.4 bench/outbox_admin_bench.lua DEVSERVER DIR [REPS] [N]). They run on the
-- writer thread, so posts wait while they do: each must cost about the same whatever else the
-- file holds.
--
-- Two files are made once: "large" holds N/50 dead letters and then N pending records, "small"
-- 2,000 of each (dead letters made the way they are in use: delivered to a dev server that has
-- no such ExternalEventDef, NOT_FOUND). Per round, on fresh copies of both, timed in ms:
--   stats:    one stats() call;
--   pending:  the first page of pending(), 100 records;
--   walk:     every page of dead_letters() (100 a page), divided by the pages read;
--   requeue:  requeue() of 1,000 named dead letters, spread over all of them;
--   purge:    purge() of 1,000 other named dead letters.
-- Prints each figure for both files, and the per-round ratio large / small with its min-max:
-- near 1x means the call does not grow with the records it does not touch.
local lh = require "littlehorse"
local core = require "littlehorse.core"
package.path = "bench/?.lua;" .. package.path
local common = require "common"

local BIN, DIR = arg[1], arg[2]
local REPS = math.tointeger(tonumber(arg[3] or os.getenv("BENCH_REPS") or "3"))
local N = math.tointeger(tonumber(arg[4] or os.getenv("BENCH_ADMIN_N") or "100000"))
local SMALL = 2000 -- the fewest that name 1,000 dead letters to requeue and 1,000 others to purge
assert(BIN and DIR and N >= 100000, "usage: outbox_admin_bench.lua DEVSERVER DIR [REPS] [N >= 100000]")
local PIN = os.getenv("BENCH_PIN") ~= "0" and "taskset -c 1 " or ""
local now = core.now
local MISSING_DEF = "no-such-def" -- the dev server knows only common.DEF_NAME

local function start_server() return common.start_devserver(BIN, DIR .. "/admin-server.out", PIN, core.sleep) end
local stop_server = common.stop_devserver

local function remove(path) for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end end

local function post_many(ob, n, def)
  local jobs = {}
  for i = 1, n do
    jobs[#jobs + 1] = ob:post_async { wf_run_id = common.WF_RUN_ID, external_event_def_name = def,
                                      content = common.real_content() }
    if #jobs == 256 or i == n then
      for _, j in ipairs(jobs) do assert(j:wait()) end
      jobs = {}
    end
  end
end

-- A file with `dead` dead letters (ids 1..dead) and then `pending` pending records.
local function make(path, dead, pending, port)
  remove(path)
  local client = lh.client { host = "127.0.0.1", port = port, timeout = 10, config_file = false }
  local ob = assert(lh.outbox(path, { client = client, max_rows = 0, max_bytes = 0 }))
  post_many(ob, dead, MISSING_DEF)
  assert(ob:drain(600))
  local st = assert(ob:stats())
  assert(st.pending == 0 and st.dead_letters == dead, "expected " .. dead .. " dead letters, got " .. st.dead_letters)
  ob:close()
  client:close()
  ob = assert(lh.outbox(path, { max_rows = 0, max_bytes = 0 }))
  post_many(ob, pending, common.DEF_NAME)
  ob:close()
end

local function timed(f)
  local t0 = now()
  f()
  return (now() - t0) * 1000
end

-- One round on a fresh copy of `file` (n dead letters first): figures in ms.
local function round(file, n)
  local path = file .. ".copy"
  remove(path)
  assert(os.execute(string.format("cp %s %s", file, path)))
  local ob = assert(lh.outbox(path, { max_rows = 0, max_bytes = 0, check = false }))
  assert(ob:stats()) -- the file is open and read before the first timed call
  local f = {}
  f.stats = timed(function() assert(ob:stats()) end)
  f.pending = timed(function() assert(#assert(ob:pending { limit = 100 }) == 100) end)
  local pages, seen = 0, 0
  local walk = timed(function()
    local after = 0
    repeat
      local page = assert(ob:dead_letters { after = after, limit = 100 })
      pages, seen = pages + 1, seen + #page
      if #page > 0 then after = page[#page].id end
    until #page < 100
  end)
  assert(seen == n, "walked " .. seen .. " of " .. n .. " dead letters")
  f.walk = walk / pages
  local step = n // 1000 -- >= 2
  local requeue, purge = {}, {}
  for i = 1, 1000 do
    requeue[i] = (i - 1) * step + 1
    purge[i] = (i - 1) * step + 2
  end
  f.requeue = timed(function() local c, err = ob:requeue(requeue); assert(c == 1000, tostring(c) .. " " .. tostring(err)) end)
  f.purge = timed(function() assert(ob:purge(purge) == 1000) end)
  ob:close()
  remove(path)
  return f
end

local large, small = DIR .. "/admin-large.db", DIR .. "/admin-small.db"
local pid, port = start_server()
make(large, N // 50, N, port)
make(small, SMALL, SMALL, port)
stop_server(pid)

local FIGS = { "stats", "pending", "walk", "requeue", "purge" }
local LABEL = {
  stats = "stats()",
  pending = "pending(): first page of 100",
  walk = "dead_letters(): one page of 100, walking all",
  requeue = "requeue() of 1,000 named dead letters",
  purge = "purge() of 1,000 named dead letters",
}
local rows = { large = {}, small = {}, ratio = {} }
for _, k in ipairs(FIGS) do rows.large[k], rows.small[k], rows.ratio[k] = {}, {}, {} end
for rep = 1, REPS do
  local l, s = round(large, N // 50), round(small, SMALL)
  local line = { "OUTBOX_ADMIN rep=" .. rep }
  for _, k in ipairs(FIGS) do
    table.insert(rows.large[k], l[k]); table.insert(rows.small[k], s[k]); table.insert(rows.ratio[k], l[k] / s[k])
    line[#line + 1] = string.format("%s_ms=%.3f/%.3f", k, l[k], s[k])
  end
  print(table.concat(line, " "))
  io.stdout:flush()
end
remove(large); remove(small)

local median, spread = common.median, common.minmax

print(string.format("Outbox reading and dead letters (%d rounds; large: %d dead letters + %d pending, small: %d + %d)",
                    REPS, N // 50, N, SMALL, SMALL))
print(string.format("  %-46s %18s %18s %20s", "figure (ms, median [min-max])", "large", "small", "large / small"))
for _, k in ipairs(FIGS) do
  local ll, lh_ = spread(rows.large[k])
  local sl, sh = spread(rows.small[k])
  local rl, rh = spread(rows.ratio[k])
  print(string.format("  %-46s %7.2f [%.2f-%.2f] %7.2f [%.2f-%.2f] %7.2fx [%.2f-%.2f]", LABEL[k],
                      median(rows.large[k]), ll, lh_, median(rows.small[k]), sl, sh, median(rows.ratio[k]), rl, rh))
end
