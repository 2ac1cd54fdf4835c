-- Shared by the Lua parts of the benchmark (lua_bench.lua, nginx_bench.lua, report.lua). Runs
-- under Lua 5.4 and LuaJIT alike (no integer division operator, no math.tointeger).
local M = {}

M.WF_RUN_ID = "bench-wf-run-0001"
M.DEF_NAME = "bench-event"
M.TENANT = "default"

-- The payloads. No guid: the dev server makes one per call, so every call stores a new event
-- and succeeds (a fixed guid would turn every call after the first into ALREADY_EXISTS).
--   small: a 3-key JSON object (the first payload of this benchmark)
--   real:  a typical webhook body, ~300 bytes of nested JSON: an order with a customer object,
--          an items array of objects, decimals and a 13-digit integer (epoch milliseconds); sent
--          as a Lua table, the common case
--   realtext: the same body as JSON text, lh.json_obj(text): the text is this process's own
--          encoding of the table, so both forms are byte-identical requests
function M.small_content()
  return { amount = 42, approved = true, note = "benchmark" }
end

function M.real_content()
  return {
    id = "ord_7Hq2KxV9mB",
    event = "order.created",
    created_ms = 1732790899123,
    currency = "EUR",
    total = 289.48,
    customer = { id = 918273, name = "Ada Lovelace", email = "ada@example.com" },
    items = {
      { sku = "A-1001", name = "Widget", qty = 2, price = 19.99 },
      { sku = "B-2002", name = "Gadget", qty = 1, price = 249.5 },
    },
  }
end

M.PAYLOADS = { "small", "real", "realtext" }

-- The requests of this process, as tables, and their wire bytes: { small = { req =, bytes = },
-- real = ..., realtext = ... }. The order in which a table's keys are walked (so the order of
-- the JSON keys) depends on the process's string hash seed, which Lua 5.4 and LuaJIT pick at
-- random per process; so the bytes are this process's, and bench/run.sh hands them to the C
-- clients of the same round (lua_bench.lua writes them out before it measures anything).
function M.requests(lh)
  local encode = lh.core.encode_put_external_event
  local function req(content)
    return { wf_run_id = M.WF_RUN_ID, external_event_def_name = M.DEF_NAME, content = content }
  end
  local real = req(M.real_content())
  local text = lh.json_encode(real.content)
  local out = {
    small = { req = req(M.small_content()) },
    real = { req = real },
    realtext = { req = req(lh.json_obj(text)), text = text },
  }
  for _, p in ipairs(M.PAYLOADS) do out[p].bytes = encode(out[p].req) end
  assert(out.realtext.bytes == out.real.bytes, "realtext and real must be byte-identical requests")
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

function M.write_file(path, data)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  assert(f:write(data))
  assert(f:close())
  assert(os.rename(tmp, path))
end

-- utime + stime of a process (all threads) in seconds, from /proc; nil if unknown.
local CLK_TCK = tonumber(os.getenv("BENCH_CLK_TCK") or "") or 100
function M.proc_cpu(pid)
  if not pid then return nil end
  local s = read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("%) (.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  -- rest starts at field 3 (state); utime is field 14, stime 15
  return (tonumber(f[12]) + tonumber(f[13])) / CLK_TCK
end

-- CPU seconds all processes on the machine have used (busy time in /proc/stat).
function M.machine_cpu()
  local s = read_file("/proc/stat") or ""
  local u, n, sy, _, _, irq, sirq, st = s:match("^cpu +(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)")
  if not u then return 0 end
  return (tonumber(u) + tonumber(n) + tonumber(sy) + tonumber(irq) + tonumber(sirq) + tonumber(st)) / CLK_TCK
end

-- Resident set size of this process in KiB (VmRSS).
function M.rss_kib()
  local s = read_file("/proc/self/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- p-th quantile (0..1) of a sorted array
function M.quantile(sorted, p)
  local n = #sorted
  if n == 0 then return 0 end
  return sorted[math.floor(p * (n - 1)) + 1]
end

-- The median of the numbers in xs (nil when empty), and their min and max.
function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

function M.minmax(xs)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
  return lo, hi
end

-- A dev server (BIN) on a free port serving def M.DEF_NAME, pinned with `pin` (a command
-- prefix such as "taskset -c 1 ", or ""), its output in OUT: its pid and port. `sleep` is a
-- function of seconds (littlehorse.core's sleep).
function M.start_devserver(bin, out, pin, sleep)
  os.remove(out)
  local p = io.popen(string.format("%s%s --port 0 --threads 1 --def %s >%s 2>&1 & echo $!", pin, bin, M.DEF_NAME, out))
  local pid = tonumber(p:read("*l"))
  p:close()
  for _ = 1, 500 do
    local port = (read_file(out) or ""):match("LISTENING [^\n]*:(%d+)")
    if port then return pid, tonumber(port) end
    sleep(0.01)
  end
  error("dev server did not start: " .. (read_file(out) or ""))
end

-- Stops it (SIGTERM) and waits until it is gone.
function M.stop_devserver(pid)
  os.execute("kill -TERM " .. pid .. " 2>/dev/null; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.01; done")
end

function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- "lua" (Lua 5.4), "luajit", or "lua5.3" / "lua5.1": the client name in result lines
function M.runtime()
  if rawget(_G, "jit") then return "luajit" end
  if _VERSION == "Lua 5.4" then return "lua" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

return M
