-- The JSON codec (src/json.c): exact text, exact types, errors with their paths.
local core = require "littlehorse.core"
local rt = require "runtime"

local encode, decode = core.json_encode, core.json_decode
local null, array_mt, empty_array = core.null, core.array_mt, core.empty_array

local bits = rt.double_bytes

-- The message json_encode raises for v (it names itself, whoever calls it), without the
-- position it is blamed on: the line of the pcall below, its caller.
local function encode_error(v)
  local ok, err = pcall(encode, v)
  assert.is_false(ok, "expected an error")
  assert.is_string(err)
  local msg = err:match("^spec/json_spec%.lua:%d+: (.*)$")
  assert(msg, "not blamed on the caller's line: " .. err)
  return msg
end

local function bad(msg) return "bad argument #1 to 'json_encode' (" .. msg .. ")" end

-- decode must fail with exactly this message.
local function decode_error(text)
  local v, err = decode(text)
  assert.is_nil(v)
  assert.is_string(err)
  return err
end

local nest = require "nest" -- n tables, each the only element of the previous one

describe("json_encode", function()
  describe("scalars", function()
    it("writes booleans and null", function()
      assert.equal("true", encode(true))
      assert.equal("false", encode(false))
      assert.equal("null", encode(null))
      assert.equal("[true,false,null]", encode({ true, false, null }))
    end)

    -- #subtype: native 64-bit integers (5.3+); without them, "integers by this runtime's rule"
    it("writes integers exactly, all 64 bits #subtype", function()
      assert.equal("0", encode(0))
      assert.equal("-7", encode(-7))
      assert.equal("9007199254740993", encode(9007199254740993))
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
      for i = 0, 62 do
        local v = math.floor(2 ^ i) -- an integer (5.3+)
        assert.equal(string.format("%d", v), encode(v))
        assert.equal(string.format("%d", -v + 1), encode(-v + 1))
      end
      math.randomseed(7)
      for _ = 1, 2000 do
        local v = rt.random_int()
        assert.equal(string.format("%d", v), encode(v))
      end
    end)

    it("writes floats as the shortest text that reads back, always with '.' or 'e'", function()
      local cases = {
        -- third: the text without an integer subtype (5.1, LuaJIT), where an integral number
        -- within +-2^53 (not -0.0) is an integer
        { 1.0, "1.0", "1" }, { -1.5, "-1.5" }, { 0.0, "0.0", "0" }, { rt.NEG0, "-0.0" },
        { 0.1, "0.1" }, { 0.1 + 0.2, "0.30000000000000004" }, { 1 / 3, "0.3333333333333333" },
        { 123.25, "123.25" }, { 100.0, "100.0", "100" }, { 2 ^ 53, "9007199254740992.0", "9007199254740992" },
        { 1e15, "1000000000000000.0", "1000000000000000" }, { 1e16, "1e+16" }, { 1e300, "1e+300" },
        { 1.5e300, "1.5e+300" }, { 2 ^ 63, "9.223372036854776e+18" },
        { 0.0001, "0.0001" }, { 0.00012, "0.00012" }, { 1e-5, "1e-5" }, { 2.5e-7, "2.5e-7" },
        { 5e-324, "5e-324" }, { 2.2250738585072014e-308, "2.2250738585072014e-308" },
        { 1.7976931348623157e308, "1.7976931348623157e+308" },
      }
      for _, c in ipairs(cases) do
        assert.equal(not rt.subtype and c[3] or c[2], encode(c[1]))
      end
    end)

    it("refuses NaN and infinity", function()
      assert.equal(bad("NaN and infinity have no JSON form"), encode_error(0 / 0))
      assert.equal(bad("NaN and infinity have no JSON form"), encode_error(math.huge))
      assert.equal(bad("x[2]: NaN and infinity have no JSON form"), encode_error({ x = { 1, -math.huge } }))
    end)

    it("escapes strings per RFC 8259 and passes UTF-8 through", function()
      assert.equal([["a\"b\\c/d"]], encode('a"b\\c/d'))
      assert.equal([["\b\f\n\r\t"]], encode("\b\f\n\r\t"))
      assert.equal('"\\u0000\\u0001\\u001f\127 "', encode("\0\1\31\127 "))
      assert.equal('"é€😀"', encode("é€😀"))
      assert.equal('""', encode(""))
      local long = ("0123456789abcdef\n\"\\é"):rep(500)
      assert.equal(long, decode(encode(long)))
    end)

    it("requires valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF)", function()
      local valid = { "\127", "\194\128", "\223\191", "\224\160\128", "\237\159\191", "\238\128\128",
                      "\239\191\191", "\240\144\128\128", "\244\143\191\191" }
      for _, s in ipairs(valid) do
        assert.equal('"' .. s .. '"', encode(s))
      end
      local invalid = { "\128", "\191", "\192\128", "\193\191", "\194", "\194\065", "\224\128\128",
                        "\224\159\191", "\237\160\128", "\237\191\191", "\225\128", "\240\128\128\128",
                        "\240\143\191\191", "\244\144\128\128", "\245\128\128\128", "\254", "\255" }
      for _, s in ipairs(invalid) do
        assert.equal(bad("invalid UTF-8 at byte 4 (use lh.bytes for binary data)"), encode_error("abc" .. s))
      end
      assert.equal(bad("name: invalid UTF-8 at byte 1 (use lh.bytes for binary data)"), encode_error({ name = "\255" }))
      assert.equal(bad("ok: invalid UTF-8 at byte 2 of a key (use lh.bytes for binary data)"),
                   encode_error({ ok = { ["k\255"] = 1 } }))
    end)

    it("writes lh.empty_array as []", function()
      assert.equal("[]", encode(empty_array))
      assert.equal('{"a":[]}', encode({ a = empty_array }))
    end)

    it("refuses functions, threads, userdata and nil", function()
      assert.equal(bad("cannot encode a function as JSON"), encode_error(print))
      assert.equal(bad("cannot encode a thread as JSON"), encode_error(coroutine.create(function() end)))
      assert.equal(bad("cannot encode a userdata as JSON"), encode_error(io.stdout))
      assert.equal(bad("cannot encode a nil as JSON"), encode_error(nil))
    end)
  end)

  describe("tables", function()
    it("writes 1..n as arrays and string keys as objects", function()
      assert.equal("[1,2,3]", encode({ 1, 2, 3 }))
      assert.equal('{"a":1}', encode({ a = 1 }))
      assert.equal('[{"b":[1.5,"x"]}]', encode({ { b = { 1.5, "x" } } }))
      assert.equal("[{},[{}]]", encode({ {}, { {} } }))
    end)

    it("writes an empty plain table as {} and an empty marked one as []", function()
      assert.equal("{}", encode({}))
      assert.equal("[]", encode(setmetatable({}, array_mt)))
      assert.equal("[1,2]", encode(setmetatable({ 1, 2 }, array_mt)))
      assert.equal("littlehorse.array", array_mt.__name)
    end)

    it("finds arrays whose elements live in the hash part", function()
      local t = {}
      t[3] = "c"; t[1] = "a"; t[2] = "b"
      assert.equal('["a","b","c"]', encode(t))
      local r = {}
      for i = 10, 1, -1 do r[i] = i end
      assert.equal("[1,2,3,4,5,6,7,8,9,10]", encode(r))
    end)

    it("writes object keys in Lua's traversal order", function()
      local t = { a = 1, b = 2, c = 3, [" "] = 4, ["é"] = 5 }
      local parts = {}
      for k, v in next, t do parts[#parts + 1] = encode(k) .. ":" .. encode(v) end
      assert.equal("{" .. table.concat(parts, ",") .. "}", encode(t))
    end)

    it("allows the same table twice when it is not its own ancestor", function()
      local shared = { 1 }
      assert.equal('[[1],[1],{"x":[1]}]', encode({ shared, shared, { x = shared } }))
    end)

    it("names the path of the culprit", function()
      assert.equal(bad("items[3].bad: cannot encode a function as JSON"),
                   encode_error({ items = { 1, 2, { bad = function() end } } }))
      assert.equal(bad('["odd key"][1]: cannot encode a thread as JSON'),
                   encode_error({ ["odd key"] = { coroutine.create(function() end) } }))
    end)

    it("refuses sparse arrays, mixed keys and other keys", function()
      assert.equal(bad("a: sparse array: key 4 but only 3 elements"), encode_error({ a = { 1, 2, nil, 4 } }))
      assert.equal(bad("sparse array: key 5 but only 3 elements"), encode_error({ [1] = 1, [2] = 2, [5] = 5 }))
      assert.equal(bad("mixed string and integer keys"), encode_error({ 1, 2, x = 1 }))
      assert.equal(bad("keys must be strings, or 1..n (found a float key)"), encode_error({ [1.5] = 1 }))
      assert.equal(bad("keys must be strings, or 1..n (found a boolean key)"), encode_error({ [true] = 1 }))
      assert.equal(bad("keys must be strings, or 1..n (found a table key)"), encode_error({ [{}] = 1 }))
      assert.equal(bad("keys must be strings, or 1..n (found key 0)"), encode_error({ [0] = "zero" }))
      assert.equal(bad("keys must be strings, or 1..n (found key -3)"), encode_error({ [-3] = 1, 5 }))
      assert.equal(bad("string key in a table marked as an array"), encode_error(setmetatable({ x = 1 }, array_mt)))
    end)

    it("refuses cycles", function()
      local t = {}
      t.self = t
      assert.equal(bad("self: cycle: this table contains itself"), encode_error(t))
      local a, b = {}, {}
      a.b = { b }
      b.a = { list = { a } }
      assert.equal(bad("b[1].a.list[1]: cycle: this table contains itself"), encode_error(a))
    end)

    it("allows 128 levels of nesting, not 129", function()
      assert.equal(("["):rep(127) .. "{}" .. ("]"):rep(127), encode(nest(128)))
      local err = encode_error(nest(129))
      assert.equal(bad(("[1]"):rep(128) .. ": nesting deeper than 128"), err)
    end)

    it("runs no Lua code (raw access only)", function()
      local called = false
      local mt = {
        __index = function() called = true end,
        __pairs = function() called = true return next, {}, nil end,
        __len = function() called = true return 0 end,
      }
      assert.equal("[1,2]", encode(setmetatable({ 1, 2 }, mt)))
      assert.equal('{"k":"v"}', encode(setmetatable({ k = "v" }, mt)))
      assert.is_false(called)
    end)
  end)

  describe("lua-cjson markers", function()
    local saved
    before_each(function() saved = package.loaded.cjson end)
    after_each(function() package.loaded.cjson = saved end)

    it("honours cjson.array_mt and cjson.empty_array_mt when cjson is loaded", function()
      local amt, emt = {}, {}
      package.loaded.cjson = { array_mt = amt, empty_array_mt = emt, null = null }
      assert.equal("[]", encode(setmetatable({}, amt)))
      assert.equal('{"a":[1]}', encode({ a = setmetatable({ 1 }, amt) }))
      assert.equal("[]", encode(setmetatable({}, emt)))
      assert.equal("[1]", encode(setmetatable({ 1 }, emt)))
      assert.equal('{"k":1}', encode(setmetatable({ k = 1 }, emt)))
      package.loaded.cjson = nil
      assert.equal("{}", encode(setmetatable({}, amt)))
    end)

    it("writes cjson.empty_array as [] (openresty lua-cjson only)", function()
      local ok, cjson = pcall(require, "cjson")
      if not (ok and type(cjson) == "table" and cjson.empty_array) then
        pending("this lua-cjson has no empty_array")
        return
      end
      assert.equal("[[]]", encode({ cjson.empty_array }))
      assert.equal(null, cjson.null)
    end)
  end)
end)

describe("json_decode", function()
  it("reads integers as integers and everything else as floats #subtype", function()
    local cases = {
      { "0", 0, "integer" }, { "-0", 0, "integer" }, { "42", 42, "integer" },
      { "9223372036854775807", math.maxinteger, "integer" },
      { "-9223372036854775808", math.mininteger, "integer" },
      { "9007199254740993", 9007199254740993, "integer" },
      { "9223372036854775808", 9223372036854775808.0, "float" },
      { "-9223372036854775809", -9223372036854775809.0, "float" },
      { "42.0", 42.0, "float" }, { "1e2", 100.0, "float" }, { "1E+2", 100.0, "float" },
      { "1e-2", 0.01, "float" }, { "0.1", 0.1, "float" }, { "-0.0", rt.NEG0, "float" },
      { "1e-400", 0.0, "float" }, { "123e30", 1.23e32, "float" },
      { "9007199254740993.0", 9007199254740992.0, "float" },
      { "0.000000000000000000000000000001", 1e-30, "float" },
      { "1.00000000000000000000000000001", 1.0, "float" },
      { "123456789012345678901234567890", 1.2345678901234568e29, "float" },
      { "4.9406564584124654e-324", 5e-324, "float" },
      { "1.7976931348623157e308", 1.7976931348623157e308, "float" },
    }
    for _, c in ipairs(cases) do
      local v = decode(c[1])
      assert.equal(c[3], math.type(v), c[1])
      assert.equal(bits(c[2] + 0.0), bits(v + 0.0), c[1])
      assert.equal(c[2], v, c[1])
    end
  end)

  -- Every runtime (the #subtype cases above are the 5.3+ form of this): an integer is exact
  -- both ways, as the value rt.int gives (an integer on 5.3+; a number within +-2^53, else an
  -- int64_t cdata under LuaJIT or lh's typed int under 5.1); a number with '.' or 'e' is a
  -- float (a plain number without a subtype).
  it("integers by this runtime's rule, exact both ways", function()
    for _, text in ipairs { "0", "42", "-42", "9007199254740991", "9007199254740992", "9007199254740993",
                            "-9007199254740993", "9223372036854775807", "-9223372036854775808" } do
      local v = decode(text)
      rt.check_int(v, text)
      assert.equal(text, encode(v))
      assert.equal("[" .. text .. "]", encode(decode("[" .. text .. "]")))
      rt.check_int(decode('{"n":' .. text .. '}').n, text)
    end
    if not rt.subtype then
      assert.equal(9007199254740992, decode("9007199254740993.0")) -- a double: rounded, as written
      assert.equal("number", type(decode("9223372036854775808"))) -- beyond int64: a double
      assert.equal("1", encode(decode("1.0"))) -- no subtype: the integral double is an integer
      assert.equal("-0.0", encode(decode("-0.0")))
    end
  end)

  it("refuses numbers beyond the largest double", function()
    assert.equal("at byte 1: number out of range (beyond the largest double)", decode_error("1e400"))
    assert.equal("at byte 5: number out of range (beyond the largest double)", decode_error("[1, -1e999]"))
  end)

  it("reads strings, escapes and surrogate pairs", function()
    assert.equal("Aé€😀\0", decode([["\u0041\u00e9\u20AC\ud83d\ude00\u0000"]]))
    assert.equal('/"\\\b\f\n\r\t', decode([["\/\"\\\b\f\n\r\t"]]))
    assert.equal("é€😀", decode('"é€😀"'))
  end)

  it("refuses bad strings", function()
    assert.equal("at byte 2: lone surrogate \\uD83D (not followed by \\uDC00..\\uDFFF)", decode_error([["\ud83d"]]))
    assert.equal("at byte 2: lone surrogate \\uDE00", decode_error([["\ude00"]]))
    assert.equal("at byte 2: invalid \\u escape", decode_error([["\u12g4"]]))
    assert.equal("at byte 2: invalid escape: backslash followed by 'x'", decode_error([["\x"]]))
    assert.equal("at byte 1: unterminated string", decode_error('"abc'))
    assert.equal("at byte 3: control character in string (must be escaped)", decode_error('"a\tb"'))
    assert.equal("at byte 5: invalid UTF-8 in string", decode_error('"abc\255"'))
    assert.equal("at byte 5: invalid UTF-8 in string", decode_error('"abc\237\160\128"'))
    assert.equal("at byte 4: invalid UTF-8 in string", decode_error('"\\n\192\128"'))
  end)

  it("marks arrays with the array metatable and reads null as lh.null", function()
    local v = decode('{"a":[1,2,{"b":null}],"c":"x","d":[]}')
    assert.is_nil(getmetatable(v))
    assert.equal(array_mt, getmetatable(v.a))
    assert.equal(array_mt, getmetatable(v.d))
    assert.equal(0, #v.d)
    assert.equal(null, v.a[3].b)
    assert.equal("[]", encode(decode("[]")))
    assert.equal("{}", encode(decode("{}")))
    assert.equal("[[],{}]", encode(decode(" [ [ ] , { } ] ")))
  end)

  it("reads scalars at the top, the 4 whitespace characters, and the last duplicate key", function()
    assert.equal(1, decode(" \t\r\n1 \t\r\n"))
    assert.equal("x", decode('"x"'))
    assert.equal(true, decode("true"))
    assert.equal(false, decode("false"))
    assert.equal(null, decode("null"))
    assert.equal(2, decode('{"a":1,"a":2}').a)
  end)

  it("is strict RFC 8259 and says where and why", function()
    local cases = {
      { "", "at byte 1: expected a value, found end of text" },
      { "   ", "at byte 4: expected a value, found end of text" },
      { "[1,]", "at byte 4: expected a value, found ']'" },
      { '{"a":1,}', "at byte 8: expected a string key, found '}'" },
      { "[1 2]", "at byte 4: expected ',' or ']', found '2'" },
      { '{"a" 1}', "at byte 6: expected ':', found '1'" },
      { "{a:1}", "at byte 2: expected a string key, found 'a'" },
      { "1 2", "at byte 3: expected end of text after the value, found '2'" },
      { "01", "at byte 1: leading zeros are not allowed" },
      { "-01", "at byte 2: leading zeros are not allowed" },
      { "-", "at byte 2: expected a digit, found end of text" },
      { "+1", "at byte 1: expected a value, found '+'" },
      { ".5", "at byte 1: expected a value, found '.'" },
      { "1.", "at byte 3: expected a digit after '.', found end of text" },
      { "1.e5", "at byte 3: expected a digit after '.', found 'e'" },
      { "1e+", "at byte 4: expected a digit in the exponent, found end of text" },
      { "NaN", "at byte 1: expected a value, found 'N'" },
      { "-Infinity", "at byte 2: expected a digit, found 'I'" },
      { "tru", "at byte 1: invalid literal (expected true)" },
      { "nul", "at byte 1: invalid literal (expected null)" },
      { "[1] // c", "at byte 5: expected end of text after the value, found '/'" },
      { "/* c */ 1", "at byte 1: expected a value, found '/'" },
      { "\f1", "at byte 1: expected a value, found byte 0x0C" },
      { "\194\1601", "at byte 1: expected a value, found byte 0xC2" },
      { "\239\187\1911", "at byte 1: expected a value, found byte 0xEF" },
      { "'a'", "at byte 1: expected a value, found '''" },
      { "[1,,2]", "at byte 4: expected a value, found ','" },
      { "0x10", "at byte 2: expected end of text after the value, found 'x'" },
      { "[1", "at byte 3: expected ',' or ']', found end of text" },
      { '{"a"', "at byte 5: expected ':', found end of text" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], decode_error(c[1]), c[1])
    end
  end)

  it("allows 128 levels of nesting, not 129", function()
    local ok128 = ("["):rep(128) .. ("]"):rep(128)
    assert.equal(ok128, encode(decode(ok128)))
    assert.equal("at byte 129: nesting deeper than 128", decode_error(("["):rep(129) .. ("]"):rep(129)))
    assert.equal("at byte 641: nesting deeper than 128",
                 decode_error(('{"a":'):rep(129) .. "1" .. ("}"):rep(129)))
  end)
end)

describe("round trips", function()
  it("gives back every double bit for bit #subtype", function()
    math.randomseed(11)
    local list = {}
    for i = 1, 20000 do
      local d
      repeat
        d = rt.random_double_bits()
      until d == d and d - d == 0
      local back = decode(encode(d))
      assert.equal("float", math.type(back))
      if bits(back) ~= bits(d) then
        assert.equal(bits(d), bits(back), string.format("%a", d))
      end
      list[(i % 500) + 1] = d
    end
    local back = decode(encode(list))
    for i = 1, #list do assert.equal(bits(list[i]), bits(back[i])) end
  end)

  it("decode -> encode -> decode keeps values and types #subtype", function()
    math.randomseed(5)
    local function rstr()
      local t = {}
      for i = 1, math.random(0, 10) do
        local r = math.random(1, 8)
        t[i] = r == 1 and "é" or r == 2 and "\n" or r == 3 and '"' or r == 4 and "😀" or string.char(math.random(32, 126))
      end
      return table.concat(t)
    end
    local function rval(depth)
      local r = math.random(1, depth > 4 and 6 or 8)
      if r == 1 then return rt.random_int()
      elseif r == 2 then return (math.random() - 0.5) * 10 ^ math.random(-20, 20)
      elseif r == 3 then return rstr()
      elseif r == 4 then return math.random() < 0.5
      elseif r == 5 then return null
      elseif r == 6 then return math.random(-1000, 1000)
      elseif r == 7 then
        local t = setmetatable({}, array_mt)
        for i = 1, math.random(0, 5) do t[i] = rval(depth + 1) end
        return t
      else
        local t = {}
        for _ = 1, math.random(0, 5) do t[rstr()] = rval(depth + 1) end
        return t
      end
    end
    local function same(a, b)
      if type(a) ~= type(b) then return false end
      if type(a) == "number" then return math.type(a) == math.type(b) and bits(a + 0.0) == bits(b + 0.0) end
      if type(a) ~= "table" then return a == b end
      if getmetatable(a) ~= getmetatable(b) then return false end
      for k, v in pairs(a) do if not same(v, b[k]) then return false end end
      for k in pairs(b) do if a[k] == nil then return false end end
      return true
    end
    for _ = 1, 2000 do
      local v = rval(0)
      local text = encode(v)
      local back = decode(text)
      assert.is_true(same(v, back), text)
      assert.equal(#text, #encode(back))
    end
  end)
end)

describe("locale independence", function()
  it("reads and writes '.' whatever LC_NUMERIC says", function()
    local old = os.setlocale(nil, "numeric")
    local set
    for _, name in ipairs({ "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "ru_RU.UTF-8" }) do
      set = os.setlocale(name, "numeric")
      if set then break end
    end
    if not set then
      pending("no locale with a decimal comma is installed")
      return
    end
    local ok, err = pcall(function()
      assert.equal("[1.5,0.1,1e+300]", encode({ 1.5, 0.1, 1e300 }))
      assert.equal(1.5, decode("1.5"))
      assert.equal(0.12345678901234567, decode("0.12345678901234567"))
      assert.equal(1.2345678901234567e-200, decode("1.2345678901234567e-200"))
    end)
    os.setlocale(old, "numeric")
    assert(ok, err)
  end)
end)
