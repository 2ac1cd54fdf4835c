-- What differs between the Lua runtimes the suite runs under (5.4, 5.3, 5.1, LuaJIT), in one
-- place, so that every spec can run under each and assert each runtime's own behaviour where
-- it differs (scripts/suites/lua-versions.sh runs the whole suite under each).
--   local rt = require "runtime"
--   rt.name        "5.4", "5.3", "5.1" or "luajit"
--   rt.subtype     Lua has an integer subtype (5.3+): 1 and 1.0 are different values
--   rt.close       `<close>` variables exist (5.4)
--   rt.lua         the interpreter command for child Lua processes (LH_SPEC_LUA overrides);
--                  they find this runtime's build through LUA_PATH / LUA_CPATH, which the
--                  runner exports (or through the paths a spec passes)
--   rt.dir         the module directory's version (lib/lua/<dir>): "5.1" for LuaJIT
--   rt.pkg         the pkg-config package of this runtime's headers and library (C hosts)
--   rt.tree        the luarocks tree holding this runtime's build (LH_SPEC_TREE, which the
--                  runner exports; ./lua_modules, where `make build` puts the 5.4 one)
--   rt.int(text)   the value a reply carries for the integer written as decimal text: an
--                  integer (5.3+), else a number within +-2^53, else an int64_t cdata (LuaJIT)
--                  or lh's typed int { type = "INT", value = text } (5.1)
--   rt.int_text(v) the decimal text of any of those (and of a plain integral number)
--   rt.is_int(v)   v is one of those forms
-- Integer helpers work on two 32-bit halves held in doubles, exact on every runtime.
local M = {}

M.jit = rawget(_G, "jit") ~= nil
M.name = M.jit and "luajit" or assert(_VERSION:match("^Lua (%d+%.%d+)$"), _VERSION)
M.subtype = math.type ~= nil
M.close = M.name == "5.4"
M.lua = os.getenv("LH_SPEC_LUA") or (M.jit and "luajit" or "lua" .. M.name)
M.dir = M.jit and "5.1" or M.name
M.pkg = M.jit and "luajit" or "lua" .. M.name
M.tree = os.getenv("LH_SPEC_TREE") or "./lua_modules"
M.unpack = table.unpack or unpack
M.ffi = M.jit and require("ffi") or nil

function M.pack(...) return { n = select("#", ...), ... } end

-- load(chunk [, name [, mode [, env]]]) for a string chunk, on every runtime.
function M.load(chunk, name, mode, env)
  if M.name ~= "5.1" then return load(chunk, name, mode, env) end
  local f, err = loadstring(chunk, name)
  if f and env then setfenv(f, env) end
  return f, err
end

-- A shell command's success and exit code, as os.execute gives them on 5.2+ (5.1 and LuaJIT
-- return the wait status).
function M.execute(cmd)
  local a, b, c = os.execute(cmd)
  if type(a) == "number" then
    local code = a >= 256 and math.floor(a / 256) or a
    return code == 0 or nil, "exit", code
  end
  return a, b, c
end

-- The output and exit code of a shell command (stderr too when the command says 2>&1).
function M.run(cmd)
  local p = assert(io.popen("(" .. cmd .. "\n); echo \"<exit $?>\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("<exit (%d+)>\n?$"))
  return (out:gsub("<exit %d+>\n?$", "")), code
end

-- The UTF-8 text of the code points given (the "\u{...}" escape is 5.3+ syntax).
function M.utf8(...)
  local out = {}
  for i = 1, select("#", ...) do
    local c = select(i, ...)
    if c < 0x80 then
      out[i] = string.char(c)
    elseif c < 0x800 then
      out[i] = string.char(0xC0 + math.floor(c / 64), 0x80 + c % 64)
    elseif c < 0x10000 then
      out[i] = string.char(0xE0 + math.floor(c / 4096), 0x80 + math.floor(c / 64) % 64, 0x80 + c % 64)
    else
      out[i] = string.char(0xF0 + math.floor(c / 262144), 0x80 + math.floor(c / 4096) % 64,
                           0x80 + math.floor(c / 64) % 64, 0x80 + c % 64)
    end
  end
  return table.concat(out)
end

-- The 8 bytes of a double, little-endian (string.pack("<d", x) on 5.3+).
function M.double_bytes(x)
  if string.pack then return string.pack("<d", x) end
  if M.ffi then
    local b = M.ffi.new("double[1]", x)
    return M.ffi.string(b, 8)
  end
  -- Lua 5.1: sign, exponent and mantissa by arithmetic (exact: every step is a power of two)
  local sign = (x < 0 or (x == 0 and 1 / x < 0)) and 1 or 0
  local e, m
  if x ~= x then
    e, m = 2047, 2 ^ 51 -- the quiet NaN 0/0 gives on x86-64 has the sign bit set
    sign = 1
  elseif x == math.huge or x == -math.huge then
    e, m = 2047, 0
  elseif x == 0 then
    e, m = 0, 0
  else
    local a = math.abs(x)
    local f, ex = math.frexp(a) -- a = f * 2^ex, 0.5 <= f < 1
    if ex - 1 >= -1022 then
      e, m = ex - 1 + 1023, (f * 2 - 1) * 2 ^ 52
    else
      e, m = 0, a / 2 ^ -1074
    end
  end
  local hi = sign * 2 ^ 31 + e * 2 ^ 20 + math.floor(m / 2 ^ 32)
  local lo = m % 2 ^ 32
  local out = {}
  for i = 0, 3 do out[i + 1] = string.char(math.floor(lo / 2 ^ (8 * i)) % 256) end
  for i = 0, 3 do out[i + 5] = string.char(math.floor(hi / 2 ^ (8 * i)) % 256) end
  return table.concat(out)
end

-- The double of 8 little-endian bytes.
function M.bytes_double(s)
  if string.unpack then return (string.unpack("<d", s)) end
  if M.ffi then
    local b = M.ffi.new("double[1]")
    M.ffi.copy(b, s, 8)
    return b[0]
  end
  local b = { s:byte(1, 8) }
  local sign = b[8] >= 128 and -1 or 1
  local e = (b[8] % 128) * 16 + math.floor(b[7] / 16)
  local m = (b[7] % 16) * 2 ^ 48
  for i = 6, 1, -1 do m = m + b[i] * 2 ^ (8 * (i - 1)) end
  if e == 2047 then return m == 0 and sign * math.huge or 0 / 0 end
  if e == 0 then return sign * m * 2 ^ -1074 end
  return sign * (1 + m / 2 ^ 52) * 2 ^ (e - 1023)
end

-- n (0 .. 2^32-1) as 4 little-endian bytes (string.pack("<I4", n) on 5.3+).
function M.u32le(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256, math.floor(n / 16777216) % 256)
end

-- a XOR b for 0 .. 2^32-1, by arithmetic (no bit operators before 5.3).
function M.bxor(a, b)
  local r, bitv = 0, 1
  for _ = 1, 32 do
    local x, y = a % 2, b % 2
    if x ~= y then r = r + bitv end
    a, b, bitv = (a - x) / 2, (b - y) / 2, bitv * 2
  end
  return r
end

-- CRC-32 (IEEE) of s.
function M.crc32(s)
  local c = 0xffffffff
  for i = 1, #s do
    c = M.bxor(c, s:byte(i))
    for _ = 1, 8 do
      if c % 2 == 1 then c = M.bxor(0xedb88320, (c - 1) / 2) else c = c / 2 end
    end
  end
  return M.bxor(c, 0xffffffff)
end

-- ---- 64-bit integers as two 32-bit halves (hi, lo), each held exactly in a double ----------

local TWO32 = 4294967296

local function lh_core() return require("littlehorse.core") end

-- Decimal text (optional '-', digits) -> hi, lo of its 64-bit two's complement.
local function text_halves(text)
  local neg, digits = text:match("^(%-?)(%d+)$")
  assert(digits, "not a decimal integer: " .. tostring(text))
  local hi, lo = 0, 0
  for d in digits:gmatch("%d") do
    lo = lo * 10 + tonumber(d)
    local carry = math.floor(lo / TWO32)
    lo = lo % TWO32
    hi = (hi * 10 + carry) % TWO32
  end
  if neg == "-" then
    lo = (TWO32 - lo) % TWO32
    hi = (TWO32 - 1 - hi + (lo == 0 and 1 or 0)) % TWO32
  end
  return hi, lo
end

-- hi, lo -> decimal text, read as signed (int64) or unsigned.
local function halves_text(hi, lo, unsigned)
  local neg = not unsigned and hi >= 2 ^ 31
  if neg then
    lo = (TWO32 - lo) % TWO32
    hi = (TWO32 - 1 - hi + (lo == 0 and 1 or 0)) % TWO32
  end
  local digits = {}
  repeat
    local r = (hi % 10) * TWO32 + lo
    hi = math.floor(hi / 10)
    lo = math.floor(r / 10)
    digits[#digits + 1] = string.format("%d", r % 10)
  until hi == 0 and lo == 0
  return (neg and "-" or "") .. string.reverse(table.concat(digits))
end

M.text_halves, M.halves_text = text_halves, halves_text

local function is_cdata_int(v)
  return M.ffi ~= nil and type(v) == "cdata"
         and (M.ffi.istype("int64_t", v) or M.ffi.istype("uint64_t", v))
end

local function is_typed_int(v)
  return type(v) == "table" and getmetatable(v) == lh_core().typed_mt and v.type == "INT"
end

-- Any integer form (see the header) -> hi, lo.
function M.halves(v)
  if type(v) == "string" then return text_halves(v) end
  if is_typed_int(v) then return M.halves(v.value) end
  if is_cdata_int(v) then
    local bit = require "bit"
    local u = M.ffi.cast("uint64_t", v)
    return tonumber(bit.rshift(u, 32)), tonumber(bit.band(u, 0xffffffff))
  end
  assert(type(v) == "number", "not an integer: " .. tostring(v))
  if M.subtype and math.type(v) == "integer" then
    local lo = v % TWO32
    local hi = math.floor((v - lo) / TWO32) % TWO32 -- v - lo is a multiple of 2^32: exact as a float
    return hi + 0.0, lo + 0.0
  end
  assert(v == math.floor(v) and math.abs(v) <= 2 ^ 63, "not an integral number: " .. tostring(v))
  local lo = v % TWO32
  local hi = math.floor(v / TWO32) % TWO32
  return hi, lo
end

-- A random 64-bit integer in this runtime's form (rt.int), any bit pattern (math.random on
-- 5.1 takes 32-bit bounds: the halves come from math.random()).
function M.random_int()
  if M.name == "5.4" then return math.random(math.mininteger, math.maxinteger) end -- 5.3: "interval too large"
  return M.int(halves_text(math.floor(math.random() * TWO32), math.floor(math.random() * TWO32)))
end

-- A random double of any finite or infinite bit pattern (NaN included).
function M.random_double_bits()
  local hi, lo = math.floor(math.random() * TWO32), math.floor(math.random() * TWO32)
  local s = M.u32le(lo) .. M.u32le(hi)
  return M.bytes_double(s)
end

function M.int_text(v)
  if type(v) == "string" then return v end
  return halves_text(M.halves(v))
end

-- The native value a reply carries for the integer with this decimal text.
function M.int(text)
  if M.subtype then
    local hi, lo = text_halves(text)
    return math.tointeger(hi) * math.tointeger(TWO32) + math.tointeger(lo) -- wraps: two's complement
  end
  local hi, lo = text_halves(text)
  local neg = hi >= 2 ^ 31
  local mhi, mlo = hi, lo -- the magnitude
  if neg then
    mlo = (TWO32 - lo) % TWO32
    mhi = (TWO32 - 1 - hi + (mlo == 0 and 1 or 0)) % TWO32
  end
  if mhi < 2 ^ 21 or (mhi == 2 ^ 21 and mlo == 0) then -- within 2^53: a double holds it
    local n = mhi * TWO32 + mlo
    return neg and -n or n
  end
  if M.jit then
    return M.ffi.cast("int64_t", M.ffi.new("uint64_t", hi) * TWO32 + lo)
  end
  return setmetatable({ type = "INT", value = halves_text(hi, lo) }, lh_core().typed_mt)
end

-- A plain number this runtime sends as an int: the integer subtype (5.3+); else an integral
-- number within +-2^53 other than -0.0 (5.1, LuaJIT). Other numbers are doubles.
function M.integral(x)
  if type(x) ~= "number" then return false end
  if M.subtype then return math.type(x) == "integer" end
  return x == math.floor(x) and math.abs(x) <= 2 ^ 53 and not (x == 0 and 1 / x < 0)
end

function M.is_int(v)
  if type(v) == "number" then
    if M.subtype then return math.type(v) == "integer" end
    return v == math.floor(v) and math.abs(v) <= 2 ^ 53
  end
  return is_cdata_int(v) or is_typed_int(v)
end

-- Raise unless v is exactly the value a reply carries for the integer `text`, in this
-- runtime's form (rt.int): an integer on 5.3+, a number within +-2^53, an int64_t cdata
-- (LuaJIT), lh's typed int with that decimal text (5.1).
function M.check_int(v, text)
  local want = M.int(text)
  local function fail(why)
    error(string.format("%s: expected %s as %s, got %s (%s)", M.name, text, type(want), tostring(v), why), 2)
  end
  if type(v) ~= type(want) then fail("type") end
  if type(want) == "number" then
    if M.subtype and math.type(v) ~= "integer" then fail("not an integer") end
    if v ~= want then fail("value") end
  elseif type(want) == "cdata" then
    if not M.ffi.istype("int64_t", v) then fail("not an int64_t") end
    if v ~= want then fail("value") end
  else
    if getmetatable(v) ~= getmetatable(want) or v.type ~= "INT" or v.value ~= text then fail("typed int") end
  end
  return true
end

-- -0.0, made at run time: Lua 5.1 keeps one constant for 0.0 and -0.0 in a function (they
-- are equal keys of its constant table), so a literal -0.0 there can be 0.
M.NEG0 = -tonumber("0.0")

M.MAXINT = M.int("9223372036854775807")
M.MININT = M.int("-9223372036854775808")

-- An object whose finalizer is fn (tables have no __gc before 5.2: a newproxy there).
function M.finalizer(fn)
  if M.name == "5.1" or M.jit then
    local p = newproxy(true)
    getmetatable(p).__gc = fn -- directly: a spec may look at the stack the finalizer runs on
    return p
  end
  return setmetatable({}, { __gc = fn })
end

-- The collector at ten times its usual speed (incremental mode).
function M.gc_fast()
  if M.name == "5.4" then
    collectgarbage("incremental", 0, 1000, 0)
  else
    collectgarbage("setstepmul", 1000)
  end
end

-- f(v) inside a block where v is a `<close>` variable (5.4). Where there is no such syntax, the
-- same: f(v), then v's __close metamethod as the block's end would call it (with f's error if
-- it raised), then f's error re-raised. rt.CLOSING is the chunk, which only 5.4 compiles.
M.CLOSING = "local v, f = ...; local x <close> = v; return f(x)"
function M.closing(v, f)
  if M.close then return assert(load(M.CLOSING))(v, f) end
  local ok, err = pcall(f, v)
  getmetatable(v).__close(v, (not ok) and err or nil)
  if not ok then error(err, 0) end
end

-- A non-NULL light userdata that is nobody's marker (debug.upvalueid where there is one; on
-- 5.1 a light userdata key of the registry, which C modules use as addresses).
function M.light_userdata(not_these)
  if debug.upvalueid then return debug.upvalueid(function() return M end, 1) end
  local skip = {}
  for _, v in ipairs(not_these or {}) do skip[v] = true end
  for k in pairs(debug.getregistry()) do
    if type(k) == "userdata" and getmetatable(k) == nil and not skip[k] and tostring(k) ~= "userdata: (nil)" then
      return k
    end
  end
  error("no light userdata found")
end

-- User value n of a userdata made by the module (compat.h: a table of slots below 5.4).
function M.uservalue(ud, n)
  if M.name == "5.4" then return (debug.getuservalue(ud, n)) end
  local slots = M.name == "5.3" and debug.getuservalue(ud) or debug.getfenv(ud)
  return slots and slots[n]
end

-- x as a float: the float subtype on 5.3+ (1 -> 1.0); the number itself elsewhere.
function M.float(x) return M.subtype and x + 0.0 or x end

return M
