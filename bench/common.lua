-- Shared by the Lua parts of the benchmark (gen_request.lua, lua_bench.lua, report.lua).
local M = {}

-- The one request every client sends: a PutExternalEvent with a small JSON object content and
-- no guid (the dev server makes one per call, so every call stores a new event and succeeds;
-- a fixed guid would turn every call after the first into ALREADY_EXISTS).
M.WF_RUN_ID = "bench-wf-run-0001"
M.DEF_NAME = "bench-event"
M.TENANT = "default"
local KEYS = { "amount", "approved", "note" } -- sorted: the reference bytes use this key order
local VALUES = { amount = 42, approved = true, note = "benchmark" }

-- Lua 5.4 seeds string hashes per process, so the order pairs() (and so our JSON encoder)
-- walks a table's keys differs between processes. The reference bytes hold the keys sorted;
-- this tries each insertion order (which decides placement when keys collide) and returns the
-- first request whose encoding is `want` (or, without `want`, has sorted keys), plus whether
-- one was found. Callers that need identical bytes exit with code 3 so run.sh starts them
-- again (a fresh process has a fresh seed).
local PERMS = { { 1, 2, 3 }, { 1, 3, 2 }, { 2, 1, 3 }, { 2, 3, 1 }, { 3, 1, 2 }, { 3, 2, 1 } }

function M.request(core, want)
  local sorted = '{"amount":42,"approved":true,"note":"benchmark"}'
  local first
  for _, p in ipairs(PERMS) do
    local content = {}
    for _, i in ipairs(p) do content[KEYS[i]] = VALUES[KEYS[i]] end
    local req = { wf_run_id = M.WF_RUN_ID, external_event_def_name = M.DEF_NAME, content = content }
    first = first or req
    local bytes = core.encode_put_external_event(req)
    if want then
      if bytes == want then return req, true, bytes end
    elseif bytes:find(sorted, 1, true) then
      return req, true, bytes
    end
  end
  return first, false, core.encode_put_external_event(first)
end

M.EXIT_RETRY = 3

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

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

function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

return M
