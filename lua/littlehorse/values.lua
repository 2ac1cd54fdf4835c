-- Constructors for VariableValue kinds that a plain Lua value cannot express.
-- Each returns a "typed" table { type = KIND, value = ... } (metatable core.typed_mt) that the
-- C converter maps to exactly that VariableValue member; replies use the same shapes, so a
-- value read back from the server can be posted again unchanged. See docs/values.md.
local core = require "littlehorse.core"
local misuse = require "littlehorse.misuse"

local typed_mt = core.typed_mt
local M = {}

-- An integer value: the integer subtype on 5.3+, an integral number on 5.1 / LuaJIT.
local function is_integer(x)
  if math.type then return math.type(x) == "integer" end
  return type(x) == "number" and x == math.floor(x)
end

local function typed(kind, value)
  return setmetatable({ type = kind, value = value }, typed_mt)
end

-- Misuse raises, blamed on the caller's line (littlehorse.misuse finds it).
local function check(cond, fmt, ...)
  if not cond then misuse.raise(string.format(fmt, ...)) end
end

--- lh.bytes(s): the `bytes` member (binary data; no UTF-8 requirement).
function M.bytes(s)
  check(type(s) == "string", "bad argument #1 to 'bytes' (string expected, got %s)", type(s))
  return typed("BYTES", s)
end

--- lh.str(s): the `str` member, even for text that would otherwise be ambiguous.
function M.str(s)
  check(type(s) == "string", "bad argument #1 to 'str' (string expected, got %s)", type(s))
  return typed("STR", s)
end

--- lh.int(n): the `int` member, from an integer, a float with an exact integer value, decimal
-- text ("9007199254740993", exact on every runtime) or an int64_t / uint64_t cdata (LuaJIT).
-- The value is kept in the form replies use (core._int, int64.h): a Lua integer on 5.3+; on
-- 5.1 and LuaJIT a number within +-2^53, else an int64_t cdata (LuaJIT) or the decimal text (5.1).
function M.int(n)
  local v = core._int(n)
  if type(v) == "table" then return v end -- Lua 5.1, beyond 2^53: already the typed int
  return typed("INT", v)
end

--- lh.double(n): the `double` member, even for an integer.
function M.double(n)
  check(type(n) == "number", "bad argument #1 to 'double' (number expected, got %s)", type(n))
  -- an integer becomes its float; a float stays as it is (-0.0 + 0.0 would be +0.0)
  if math.type and math.type(n) == "integer" then n = n + 0.0 end
  return typed("DOUBLE", n)
end

--- lh.json_obj(t_or_text) / lh.json_arr(t_or_text): JSON content; raw text is validated when sent.
function M.json_obj(v)
  check(type(v) == "table" or type(v) == "string" or v == core.empty_array,
        "bad argument #1 to 'json_obj' (table or JSON text expected, got %s)", type(v))
  return typed("JSON_OBJ", v)
end

function M.json_arr(v)
  check(type(v) == "table" or type(v) == "string" or v == core.empty_array,
        "bad argument #1 to 'json_arr' (table or JSON text expected, got %s)", type(v))
  return typed("JSON_ARR", v)
end

--- lh.wf_run_id("parent_child") or lh.wf_run_id{ id =, parent_wf_run_id = }: the `wf_run_id` member.
-- The string form follows the SDKs: ancestors joined with "_", root first.
function M.parse_wf_run_id(s)
  local parts = {}
  for part in string.gmatch(s, "[^_]+") do parts[#parts + 1] = part end
  check(#parts > 0 and not s:find("__", 1, true) and s:sub(1, 1) ~= "_" and s:sub(-1) ~= "_",
        "bad argument #1 to 'wf_run_id' (bad WfRunId string %q: ids joined with '_', root first)", s)
  local id
  for _, part in ipairs(parts) do id = { id = part, parent_wf_run_id = id } end
  return id
end

function M.wf_run_id(v)
  if type(v) == "string" then return typed("WF_RUN_ID", M.parse_wf_run_id(v)) end
  check(type(v) == "table", "bad argument #1 to 'wf_run_id' (string or table expected, got %s)", type(v))
  return typed("WF_RUN_ID", v)
end

-- Days from civil date (proleptic Gregorian), the inverse of the C formatter's.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local floor = math.floor -- not //: this file also runs on Lua 5.1 and LuaJIT
  local era = floor((y >= 0 and y or y - 399) / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function parse_rfc3339(s)
  local y, mo, d, h, mi, sec, rest =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local frac, zone = rest:match("^%.(%d+)(.*)$")
  if not frac then frac, zone = "", rest end
  if #frac > 9 then return nil end
  local offset
  if zone == "Z" or zone == "z" then
    offset = 0
  else
    local sign, oh, om = zone:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil end
    if tonumber(oh) > 23 or tonumber(om) > 59 then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or sec > 60 then return nil end
  -- the day must exist in that month (2024-02-30 is an error, not 2024-03-01)
  local leap = y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
  if d > (mo == 2 and (leap and 29 or 28) or ((mo == 4 or mo == 6 or mo == 9 or mo == 11) and 30 or 31)) then
    return nil, string.format("no such date: %04d-%02d-%02d", y, mo, d)
  end
  local seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
  local nanos = #frac > 0 and tonumber(frac .. string.rep("0", 9 - #frac)) or 0
  return seconds, nanos
end

-- The range RFC 3339 and google.protobuf.Timestamp share: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
local MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799

local function in_range(s)
  check(s >= MIN_SECONDS and s <= MAX_SECONDS,
        "bad argument #1 to 'timestamp' (out of range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z)")
end

--- lh.timestamp(x): the `utc_timestamp` member, from epoch seconds (with fraction),
-- { seconds =, nanos = }, or an RFC 3339 string. Returns a timestamp object whose tostring is
-- RFC 3339 UTC, the same kind of object replies carry (e.g. event.created_at).
function M.timestamp(x)
  local t = type(x)
  if t == "number" then
    check(x == x and x > -math.huge and x < math.huge, "bad argument #1 to 'timestamp' (not a finite number)")
    in_range(x)
    local s = math.floor(x)
    local ns = math.floor((x - s) * 1e9 + 0.5)
    if ns >= 1000000000 then s, ns = s + 1, ns - 1000000000 end
    in_range(s)
    return core.timestamp(math.tointeger and math.tointeger(s) or s, ns)
  elseif t == "table" then
    check(is_integer(x.seconds), "bad argument #1 to 'timestamp' (seconds: integer expected)")
    check(x.nanos == nil or is_integer(x.nanos), "bad argument #1 to 'timestamp' (nanos: integer expected)")
    check(x.nanos == nil or (x.nanos >= 0 and x.nanos <= 999999999),
          "bad argument #1 to 'timestamp' (nanos: must be 0..999999999)")
    in_range(x.seconds)
    return core.timestamp(x.seconds, x.nanos or 0)
  elseif t == "string" then
    local s, ns = parse_rfc3339(x)
    check(s ~= nil, "bad argument #1 to 'timestamp' (%s)", ns or string.format("not an RFC 3339 date-time: %q", x))
    in_range(s)
    return core.timestamp(s, ns)
  end
  misuse.raise(string.format("bad argument #1 to 'timestamp' (number, table or string expected, got %s)", t))
end

--- lh.array{...}: the native `array` member (items are any values; lh.null for a null item).
function M.array(items)
  check(type(items) == "table", "bad argument #1 to 'array' (table expected, got %s)", type(items))
  return typed("ARRAY", items)
end

--- lh.map{ {k, v}, ... }: the native `map` member (keys are VariableValues too).
function M.map(entries)
  check(type(entries) == "table", "bad argument #1 to 'map' (table expected, got %s)", type(entries))
  return typed("MAP", entries)
end

--- lh.struct(def_name, version, fields): the native `struct` member.
function M.struct(name, version, fields)
  check(type(name) == "string", "bad argument #1 to 'struct' (StructDef name expected, got %s)", type(name))
  check(is_integer(version), "bad argument #2 to 'struct' (integer version expected)")
  check(type(fields) == "table", "bad argument #3 to 'struct' (table of fields expected, got %s)", type(fields))
  local v = typed("STRUCT", fields)
  v.name, v.version = name, version
  return v
end

return M
