-- A lower bound for the "reply as tables" instruction gates (bench/instructions.sh): the
-- instructions Lua 5.4 itself spends to make one reply's tables, however the binding is
-- written. It asks the dev server for one reply per payload (reply as tables), writes that
-- reply out as Lua source, a table constructor with constant keys and values (setmetatable for
-- the tables that have one: created_at, arrays), compiles it, and makes the tables BENCH_CALLS
-- times between two calls of os.remove(), where callgrind cuts its counts. The collector is
-- stopped while it counts, and no string is made (constants), so this is less than any binding
-- can spend on the same tables: its strings and its collection come on top (the report adds
-- what Lua spent in lua_pushlstring and lua_next in the measured calls).
--
--   lua5.4 bench/reply_floor.lua TARGET      prints one PART line per payload
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local common = require "common"
local lh = require "littlehorse"

local target = arg[1] or error("usage: reply_floor.lua TARGET")
local calls = tonumber(os.getenv("BENCH_CALLS") or "") or 5000
local REQ = common.requests(lh)
local client = lh.client { target = target, tenant = common.TENANT, timeout = 10 }

-- Lua source that makes a copy of v: constants inline, metatables as upvalues mts[i].
local function source(v, mts)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "boolean" then return tostring(v) end
  if t == "userdata" and v == lh.null then return "NULL" end
  assert(t == "table", "reply_floor: cannot write a " .. t)
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = source(v[i], mts) end
  for k, x in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      assert(type(k) == "string" and k:match("^[%a_][%w_]*$"), "reply_floor: key " .. tostring(k))
      parts[#parts + 1] = k .. " = " .. source(x, mts)
    end
  end
  local body = "{ " .. table.concat(parts, ", ") .. " }"
  local mt = getmetatable(v)
  if not mt then return body end
  mts[#mts + 1] = mt
  return string.format("setmetatable(%s, mts[%d])", body, #mts)
end

local function maker(reply)
  local mts = {}
  local src = "local mts, NULL, setmetatable = ...\nreturn function() return " .. source(reply, mts) .. " end"
  return assert(load(src, "=reply_floor"))(mts, lh.null, setmetatable)
end

local function marker() os.remove("/nonexistent/lh-bench-marker") end

local makers = {}
for _, payload in ipairs { "small", "real" } do
  local reply = assert(client:put_external_event(REQ[payload].req))
  makers[payload] = maker(reply)
end
client:close()

local parts, sink = 0, nil
for _, payload in ipairs { "small", "real" } do
  local make = makers[payload]
  for _ = 1, math.max(1, calls // 10) do sink = make() end
  collectgarbage("collect")
  collectgarbage("stop")
  marker()
  for _ = 1, calls do sink = make() end
  marker()
  parts = parts + 2
  collectgarbage("restart")
  collectgarbage("collect")
  print(string.format("PART %d client=floor payload=%s mode=build inflight=0 calls=%d", parts, payload, calls))
end
assert(sink)
