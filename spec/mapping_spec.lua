-- The "Value mapping" (docs/values.md), row by row, through a real dev server and back: what each
-- Lua value, marker and constructor becomes, how the reply represents it (content_type,
-- timestamps with RFC 3339 tostring, typed tables, lh.null, lh.array_mt), that a reply can
-- be posted again unchanged, and the error (naming the path) for everything that has no
-- faithful encoding. The wire side of the same rows is checked against the official codec
-- in spec/conformance_spec.lua.
local lh = require "littlehorse"
local cjson = require "cjson"
local devserver = require "devserver"
local rt = require "runtime"
local same = dofile("fuzz/checks.lua").same -- strict: types, int vs float, float bits, metatables

local core = lh.core
local DEF = "mapping"

local bits = rt.double_bytes
local BIG = rt.int("9007199254740993") -- beyond 2^53: an integer, int64_t cdata or typed int (rt.int)

describe("value mapping through the dev server", function()
  local srv, client, restore_cjson
  local n = 0

  lazy_setup(function()
    -- Debian's lua-cjson 2.1.0 has only cjson.null; give the loaded module OpenResty
    -- lua-cjson's array markers (see conformance_spec.lua) so their interop is tested too.
    if not cjson.array_mt then
      cjson.array_mt, cjson.empty_array_mt = {}, {}
      cjson.empty_array = rt.light_userdata { lh.null, cjson.null }
      restore_cjson = function() cjson.array_mt, cjson.empty_array_mt, cjson.empty_array = nil, nil, nil end
    end
    srv, client = devserver.with_client({ defs = { DEF } }, 5)
  end)

  lazy_teardown(function()
    devserver.release(srv, client)
    if restore_cjson then restore_cjson() end
  end)

  -- Post content; the reply and a GetExternalEvent of it must agree. Returns content, kind.
  local function roundtrip(content)
    n = n + 1
    local ev, err = client:put_external_event { wf_run_id = "map-" .. n, external_event_def_name = DEF, content = content }
    assert(ev, tostring(err))
    local got = assert(client:get_external_event(ev.id))
    same(ev.content, got.content)
    assert.equal(ev.content_type, got.content_type)
    return ev.content, ev.content_type
  end

  -- The value comes back as `want` (strictly equal), with content type `kind`; posting the
  -- reply value again gives the same value and kind (a reply can be re-posted unchanged).
  local function maps(content, kind, want)
    local got, k = roundtrip(content)
    assert.equal(kind, k)
    same(want, got)
    local again, k2 = roundtrip(got)
    assert.equal(kind, k2)
    same(want, again)
    return got
  end

  local function arr(t) return setmetatable(t, lh.array_mt) end
  local function typed(t) return setmetatable(t, core.typed_mt) end

  -- put_external_event must raise "bad argument #1 to 'put_external_event' (<msg>)", with
  -- msg matching the pattern (anchored at the path).
  local function refuses(content, pattern)
    local ok, err = pcall(client.put_external_event, client,
                          { wf_run_id = "w", external_event_def_name = DEF, content = content })
    assert.is_false(ok, "expected an error matching " .. pattern)
    assert.matches("bad argument #1 to 'put_external_event' %(" .. pattern, err)
  end

  describe("plain Lua values", function()
    it("nil, lh.null and cjson.null: NULL, back as nil with content_type nil", function()
      assert.equal(lh.null, cjson.null) -- the same light userdata
      for _, v in pairs { [1] = lh.null, [2] = cjson.null } do
        local got, kind = roundtrip(v)
        assert.is_nil(got); assert.is_nil(kind)
      end
      local got, kind = roundtrip(nil)
      assert.is_nil(got); assert.is_nil(kind)
    end)

    it("booleans: BOOL, false included", function()
      maps(true, "BOOL", true)
      maps(false, "BOOL", false)
    end)

    it("integers: INT, all 64 bits, zero included", function()
      for _, v in ipairs { 0, 7, -7, BIG, rt.MAXINT, rt.MININT } do
        maps(v, "INT", v)
      end
    end)

    it("floats: DOUBLE, bit for bit: -0.0, subnormals, extremes, inf and NaN (outside JSON)", function()
      for _, v in ipairs { rt.float(0), rt.NEG0, rt.float(1), 0.1, 5e-324, 2.225073858507201e-308,
                           1.7976931348623157e308, math.huge, -math.huge } do
        if rt.integral(v) then
          -- 5.1 / LuaJIT: an integral number is an int; lh.double sends it as a DOUBLE, whose
          -- reply is that number again (posted again: an INT)
          maps(v, "INT", v)
          local got, kind = roundtrip(lh.double(v))
          assert.equal("DOUBLE", kind)
          assert.equal(bits(v), bits(got))
        else
          local got = maps(v, "DOUBLE", v)
          assert.equal(bits(v), bits(got))
        end
      end
      local nan = 0 / 0
      local got, kind = roundtrip(nan)
      assert.equal("DOUBLE", kind)
      assert.equal(bits(nan), bits(got)) -- the same NaN bits
    end)

    it("strings: STR, valid UTF-8 (empty, multi-byte, 4-byte sequences)", function()
      for _, s in ipairs { "", "ascii", "h" .. rt.utf8(0xe9) .. "llo, " .. rt.utf8(0x4e16, 0x754c) .. " " .. rt.utf8(0x1F389),
                           rt.utf8(0x10FFFF, 0x7F) .. "\t" } do
        maps(s, "STR", s)
      end
    end)

    it("strings with NUL bytes (U+0000 is valid UTF-8): STR, whole, at any depth", function()
      for _, v in ipairs { "a\0b", "\0", "\0\0lead", "trail\0", string.rep("x\0", 400) } do
        maps(v, "STR", v)
        maps(lh.str(v), "STR", v)
        maps(lh.array { v, lh.str(v) }, "ARRAY", typed { type = "ARRAY", value = { v, v } })
      end
    end)

    it("strings that are not valid UTF-8: errors suggesting lh.bytes", function()
      refuses("\255\254", "content: invalid UTF%-8 at byte 1 %(use lh%.bytes")
      refuses("ok\195", "content: invalid UTF%-8 at byte 3")
      refuses("\237\160\128", "content: invalid UTF%-8 at byte 1") -- an encoded surrogate
      refuses("\192\175", "content: invalid UTF%-8 at byte 1")     -- an overlong form
      refuses("a\0\255", "content: invalid UTF%-8 at byte 3")
    end)

    it("tables with keys 1..n: JSON_ARR, back with lh.array_mt (nested arrays too)", function()
      maps({ 1, "two", 3.5, true, lh.null, { 4 } }, "JSON_ARR", arr { 1, "two", 3.5, true, lh.null, arr { 4 } })
    end)

    it("tables with string keys and {}: JSON_OBJ", function()
      maps({}, "JSON_OBJ", {})
      maps({ user = { name = "ada", tags = { "a", "b" }, none = lh.null }, n = BIG, f = 2.5 },
           "JSON_OBJ", { user = { name = "ada", tags = arr { "a", "b" }, none = lh.null }, n = BIG, f = 2.5 })
    end)

    it("inside JSON: integers stay integers to 64 bits, floats stay floats (1.0 is not 1)", function()
      local got = maps({ rt.MAXINT, rt.MININT, BIG, rt.float(1), rt.NEG0, 5e-324, 1e300, 0.1 + 0.2 },
                       "JSON_ARR", arr { rt.MAXINT, rt.MININT, BIG, rt.float(1), rt.NEG0, 5e-324, 1e300, 0.1 + 0.2 })
      for i, text in ipairs { "9223372036854775807", "-9223372036854775808", "9007199254740993" } do
        rt.check_int(got[i], text)
      end
      if rt.subtype then assert.equal("float", math.type(got[4])) end
      assert.equal(bits(rt.NEG0), bits(got[5]))
      -- without an integer subtype (5.1, LuaJIT) 1.0 is the number 1, written as an integer
      assert.equal('[9223372036854775807,-9223372036854775808,9007199254740993,' .. (rt.subtype and "1.0" or "1")
                   .. ',-0.0,5e-324,1e+300,0.30000000000000004]', lh.json_encode(got))
    end)

    it("inside JSON: strings escaped and read back exactly, keys too", function()
      local s = "q\" b\\ /\b\f\n\r\t\0\1\31\127 " .. rt.utf8(0xe9, 0x1F389)
      maps({ [s] = s }, "JSON_OBJ", { [s] = s })
    end)
  end)

  describe("markers", function()
    it("lh.empty_array and tables with lh.array_mt: [] (an empty plain table is {})", function()
      maps(lh.empty_array, "JSON_ARR", arr {})
      maps(setmetatable({}, lh.array_mt), "JSON_ARR", arr {})
      maps({ a = lh.empty_array, b = {} }, "JSON_OBJ", { a = arr {}, b = {} })
      maps(setmetatable({ 1, 2 }, lh.array_mt), "JSON_ARR", arr { 1, 2 })
    end)

    it("lua-cjson's markers interoperate: cjson.null, cjson.array_mt, cjson.empty_array, empty_array_mt", function()
      maps({ x = cjson.null }, "JSON_OBJ", { x = lh.null })
      maps(setmetatable({}, cjson.array_mt), "JSON_ARR", arr {})
      maps(cjson.empty_array, "JSON_ARR", arr {})
      maps({ e = cjson.empty_array, m = setmetatable({}, cjson.empty_array_mt) }, "JSON_OBJ", { e = arr {}, m = arr {} })
      maps(setmetatable({ "x" }, cjson.array_mt), "JSON_ARR", arr { "x" })
    end)

    it("decoded JSON re-encodes to the same text (lh.null, lh.array_mt)", function()
      local text = '{"a":[1,2.0,null,[],{}]}'
      local got = roundtrip(lh.json_obj(text))
      -- (5.1, LuaJIT: 2.0 is the number 2, an integer)
      assert.equal(rt.subtype and text or '{"a":[1,2,null,[],{}]}', lh.json_encode(got))
    end)
  end)

  describe("constructors", function()
    it("lh.bytes(s): BYTES, any bytes, back as a string (content_type says BYTES)", function()
      for _, b in ipairs { "\0\1\2\255 binary", "", "text" } do
        local got, kind = roundtrip(lh.bytes(b))
        assert.equal("BYTES", kind); same(b, got)
        -- to post it again as bytes, wrap it again
        got, kind = roundtrip(lh.bytes(got))
        assert.equal("BYTES", kind); same(b, got)
      end
    end)

    it("lh.int, lh.double, lh.str: force INT, DOUBLE, STR", function()
      local got, kind = roundtrip(lh.int(3.0))
      assert.equal("INT", kind); same(3, got)
      got, kind = roundtrip(lh.int(rt.MININT))
      assert.equal("INT", kind); rt.check_int(got, "-9223372036854775808")
      got, kind = roundtrip(lh.int("-9223372036854775808"))
      assert.equal("INT", kind); rt.check_int(got, "-9223372036854775808")
      got, kind = roundtrip(lh.double(2))
      assert.equal("DOUBLE", kind); same(2.0, got)
      got, kind = roundtrip(lh.str("123"))
      assert.equal("STR", kind); same("123", got)
    end)

    it("lh.json_obj / lh.json_arr: from a table or validated JSON text", function()
      local got, kind = roundtrip(lh.json_obj { k = { 1 } })
      assert.equal("JSON_OBJ", kind); same({ k = arr { 1 } }, got)
      got, kind = roundtrip(lh.json_obj ' { "k" : 9223372036854775807 } ')
      assert.equal("JSON_OBJ", kind); rt.check_int(got.k, "9223372036854775807")
      got, kind = roundtrip(lh.json_arr "[1, 2.5]")
      assert.equal("JSON_ARR", kind); same(arr { 1, 2.5 }, got)
      got, kind = roundtrip(lh.json_arr {})
      assert.equal("JSON_ARR", kind); same(arr {}, got)
      got, kind = roundtrip(lh.json_arr(lh.empty_array))
      assert.equal("JSON_ARR", kind); same(arr {}, got)
      got, kind = roundtrip(lh.json_obj {})
      assert.equal("JSON_OBJ", kind); same({}, got)
    end)

    it("lh.timestamp: epoch seconds, { seconds, nanos }, RFC 3339 with offsets -> TIMESTAMP objects", function()
      local cases = {
        { lh.timestamp(1700000000), 1700000000, 0, "2023-11-14T22:13:20Z" },
        { lh.timestamp(1.5), 1, 500000000, "1970-01-01T00:00:01.500Z" },
        { lh.timestamp(-0.25), -1, 750000000, "1969-12-31T23:59:59.750Z" },
        { lh.timestamp { seconds = 1700000000, nanos = 123456789 }, 1700000000, 123456789, "2023-11-14T22:13:20.123456789Z" },
        { lh.timestamp { seconds = 0 }, 0, 0, "1970-01-01T00:00:00Z" },
        { lh.timestamp "2023-11-14T22:13:20.123Z", 1700000000, 123000000, "2023-11-14T22:13:20.123Z" },
        { lh.timestamp "2023-11-15T01:43:20.000001+03:30", 1700000000, 1000, "2023-11-14T22:13:20.000001Z" },
        { lh.timestamp "2023-11-14T17:13:20-05:00", 1700000000, 0, "2023-11-14T22:13:20Z" },
        { lh.timestamp "2023-11-14t22:13:20z", 1700000000, 0, "2023-11-14T22:13:20Z" },
        { lh.timestamp "2024-02-29T00:00:00Z", 1709164800, 0, "2024-02-29T00:00:00Z" },
        { lh.timestamp "0001-01-01T00:00:00Z", -62135596800, 0, "0001-01-01T00:00:00Z" },
        { lh.timestamp "9999-12-31T23:59:59.999999999Z", 253402300799, 999999999, "9999-12-31T23:59:59.999999999Z" },
      }
      for _, c in ipairs(cases) do
        local ts = c[1]
        assert.equal(core.timestamp_mt, getmetatable(ts))
        assert.equal(c[4], tostring(ts))
        local got = maps(ts, "TIMESTAMP", ts)
        assert.equal(c[2], got.seconds); assert.equal(c[3], got.nanos)
        assert.equal(c[4], tostring(got))
        assert.equal(got, lh.timestamp(tostring(got))) -- tostring parses back (timestamps compare with ==)
      end
    end)

    it("lh.timestamp: errors for what is not an instant in 0001..9999", function()
      local function bad(x, pattern)
        local ok, err = pcall(lh.timestamp, x)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'timestamp' %(" .. pattern, err)
      end
      bad("2024-02-30T00:00:00Z", "no such date: 2024%-02%-30")
      bad("2023-02-29T00:00:00Z", "no such date: 2023%-02%-29")
      bad("2024-13-01T00:00:00Z", "not an RFC 3339")
      bad("2024-01-01T24:00:00Z", "not an RFC 3339")
      bad("2024-01-01T00:00:00", "not an RFC 3339") -- no offset
      bad("2024-01-01T00:00:00+24:00", "not an RFC 3339")
      bad("2024-01-01T00:00:00.1234567891Z", "not an RFC 3339")
      bad("yesterday", "not an RFC 3339")
      bad(0 / 0, "not a finite number")
      bad(math.huge, "not a finite number")
      bad(1e300, "out of range")
      bad(-62135596801, "out of range")
      bad({ seconds = 253402300800 }, "out of range")
      bad({ seconds = 1.5 }, "seconds: integer expected")
      bad({ seconds = 1, nanos = 1000000000 }, "nanos: must be 0%.%.999999999")
      bad({ seconds = 1, nanos = -1 }, "nanos: must be 0%.%.999999999")
      bad(true, "number, table or string expected")
      -- a timestamp object built by hand is range-checked when sent, naming the path
      refuses(core.timestamp(253402300800, 0), "content%.seconds: 253402300800 is out of range")
    end)

    it("lh.wf_run_id: WF_RUN_ID from 'parent_child' or a table, back as a typed table", function()
      local want = typed { type = "WF_RUN_ID", value = { id = "child", parent_wf_run_id = { id = "parent" } } }
      maps(lh.wf_run_id "parent_child", "WF_RUN_ID", want)
      maps(lh.wf_run_id { id = "child", parent_wf_run_id = { id = "parent" } }, "WF_RUN_ID", want)
      maps(lh.wf_run_id "solo", "WF_RUN_ID", typed { type = "WF_RUN_ID", value = { id = "solo" } })
      maps(lh.wf_run_id "a_b_c", "WF_RUN_ID",
           typed { type = "WF_RUN_ID", value = { id = "c", parent_wf_run_id = { id = "b", parent_wf_run_id = { id = "a" } } } })
    end)

    it("lh.wf_run_id: errors", function()
      for _, s in ipairs { "", "_a", "a_", "a__b" } do
        local ok, err = pcall(lh.wf_run_id, s)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'wf_run_id' %(bad WfRunId string", err)
      end
      local ok, err = pcall(lh.wf_run_id, 5)
      assert.is_false(ok); assert.matches("bad argument #1 to 'wf_run_id' %(string or table expected", err)
      refuses(lh.wf_run_id { id = "c", parent_wf_run_id = { id = "" } }, "content%.parent_wf_run_id%.id: must not be empty")
      refuses(lh.wf_run_id { id = "c", parent = "p" }, "content: unknown field 'parent'")
      refuses(lh.wf_run_id { parent_wf_run_id = { id = "p" } }, "content%.id: required")
      refuses(lh.wf_run_id { id = "\255" }, "content%.id: invalid UTF%-8")
    end)

    it("lh.array: native ARRAY; lh.null items come back as lh.null; items map like content", function()
      -- inside native values bytes come back as lh.bytes(s): no content_type tells them from strings
      maps(lh.array { 1, "a", lh.null, 2.5, false, { k = 1 }, lh.bytes "\0", lh.array {}, lh.timestamp(0) },
           "ARRAY", typed { type = "ARRAY", value = { 1, "a", lh.null, 2.5, false, { k = 1 }, lh.bytes "\0",
                                                      typed { type = "ARRAY", value = {} }, lh.timestamp(0) } })
      maps(lh.array {}, "ARRAY", typed { type = "ARRAY", value = {} })
    end)

    it("lh.map: native MAP of {key, value} pairs, keys and values any values, in order", function()
      maps(lh.map { { "k", 1 }, { 2, lh.null }, { lh.null, "v" }, { { 1 }, lh.map {} } }, "MAP",
           typed { type = "MAP", value = { { "k", 1 }, { 2, lh.null }, { lh.null, "v" },
                                            { arr { 1 }, typed { type = "MAP", value = {} } } } })
    end)

    it("lh.struct: native STRUCT with its StructDef name and version", function()
      maps(lh.struct("car", 2, { make = "VW", year = 1999, owner = lh.null, parts = lh.array { "wheel" } }), "STRUCT",
           typed { type = "STRUCT", name = "car", version = 2,
                   value = { make = "VW", year = 1999, owner = lh.null, parts = typed { type = "ARRAY", value = { "wheel" } } } })
      maps(lh.struct("empty", 0, {}), "STRUCT", typed { type = "STRUCT", name = "empty", version = 0, value = {} })
    end)

    it("bad constructor arguments raise at once, naming the argument", function()
      local cases = {
        { lh.bytes, { 1 }, "#1 to 'bytes' %(string expected, got number" },
        { lh.str, { {} }, "#1 to 'str' %(string expected, got table" },
        { lh.int, { {} }, "#1 to 'int' %(number, decimal text or int64 cdata expected, got table" },
        { lh.int, { "1.5" }, "#1 to 'int' %('1%.5' is not a decimal integer in the int64 range" },
        { lh.int, { 1.5 }, "#1 to 'int' %(number has no integer representation" },
        { lh.int, { 2 ^ 63 }, "#1 to 'int' %(number has no integer representation" },
        { lh.int, { 0 / 0 }, "#1 to 'int' %(number has no integer representation" },
        { lh.double, { "1" }, "#1 to 'double' %(number expected, got string" },
        { lh.json_obj, { 1 }, "#1 to 'json_obj' %(table or JSON text expected, got number" },
        { lh.json_arr, { true }, "#1 to 'json_arr' %(table or JSON text expected, got boolean" },
        { lh.array, { "x" }, "#1 to 'array' %(table expected, got string" },
        { lh.map, { 1 }, "#1 to 'map' %(table expected, got number" },
        { lh.struct, { 1, 1, {} }, "#1 to 'struct' %(StructDef name expected, got number" },
        { lh.struct, { "s", 1.5, {} }, "#2 to 'struct' %(integer version expected" },
        { lh.struct, { "s", 1, "x" }, "#3 to 'struct' %(table of fields expected, got string" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[1], rt.unpack(c[2]))
        assert.is_false(ok)
        assert.matches("^[^\n]-bad argument " .. c[3], err)
      end
    end)

    it("JSON text is judged exactly as json_decode judges it (the same message, or accepted)", function()
      local long_escaped = '{"s":"' .. string.rep("a\\n", 1200) .. '"}'
      local long_number = '{"n":1' .. string.rep("0", 400) .. '}'
      local texts = {
        "{bad", "{", "{}", '{"a":}', '{"a" 1}', '{"a":1,}', '{"a":1 "b":2}', '{"a":[1,2,]}',
        '{"a":[1 2]}', '{"a":tru}', '{"a":nul}', '{"a":falsy}', '{"a":-}', '{"a":01}', '{"a":1.}',
        '{"a":1e}', '{"a":1e999}', '{"a":-1e400}', '{"a":"\\x"}', '{"a":"\\u12G4"}',
        '{"a":"\\uD800"}', '{"a":"\\uDC00"}', '{"a":"\\uD83D\\uDE00"}', '{"a":"x\1y"}', '{"a":"\xff"}',
        '{"a":"abc', '{"a":1} x', " { } ", '{"a":{"b":{"c":[[],{}]}}}', string.rep("[", 129) .. string.rep("]", 129),
        "{" .. string.rep('"k":[', 127) .. string.rep("]", 127) .. "}", long_escaped, long_number,
        long_escaped:sub(1, -3), '{"n":' .. string.rep("9", 300) .. 'e-999}',
        '{"a":9223372036854775807,"b":-9223372036854775808,"c":18446744073709551616,"d":1.5e-7}',
      }
      for _, text in ipairs(texts) do
        local v, why = lh.json_decode(text)
        local ok, err = pcall(core.encode_put_external_event,
                              { wf_run_id = "w", external_event_def_name = DEF, content = lh.json_obj(text) })
        if v == nil then
          assert.is_false(ok, text)
          assert.is_truthy(err:find("content: invalid JSON text: " .. why, 1, true), text .. " -> " .. err)
        elseif text:match("^%s*{") then
          assert.is_true(ok, text .. " -> " .. tostring(err))
        end
      end
    end)

    it("constructor contents with no faithful encoding: errors naming the path", function()
      refuses(lh.json_obj "{bad", "content: invalid JSON text: at byte 2")
      refuses(lh.json_obj "[1]", "content: lh%.json_obj needs a JSON object, got an array")
      refuses(lh.json_arr '{"a":1}', "content: lh%.json_arr needs a JSON array, got an object")
      refuses(lh.json_obj "3", "content: JSON content must be an object or an array")
      refuses(lh.json_obj '{"a":"\\u0000"}\0', "content: invalid JSON text")
      refuses(lh.json_obj { x = 0 / 0 }, "content%.x: NaN and infinity have no JSON form")
      refuses(lh.array { 1, nil, 3 }, "content%[2%]: hole in the array %(use lh%.null")
      -- the length operator may stop at the hole (here 1 on every runtime): the 3 is not dropped
      local filled = {}
      filled[1], filled[3] = 1, 3
      refuses(lh.array(filled), "content%[2%]: hole in the array %(use lh%.null")
      refuses(lh.array { lh.array { print } }, "content%[1%]%[1%]: cannot convert a function")
      refuses(lh.map { 1 }, "content%[1%]: expected a {key, value} pair, got number")
      refuses(lh.map { { nil, 1 } }, "content%[1%]%[1%]: map keys cannot be nil")
      refuses(lh.map { { "k", { bad = print } } }, "content%[1%]%[2%]%.bad: cannot encode a function")
      refuses(lh.struct("s", 1, { [1] = 2 }), "content: struct field names must be strings")
      refuses(lh.struct("s", 1, { ["\255"] = 2 }), 'content%["\255"%]: invalid UTF%-8')
      refuses(lh.struct("s", 1, { ["a b"] = print }), 'content%["a b"%]: cannot convert a function')
      refuses(lh.struct("s", 1, { a = { b = print } }), "content%.a%.b: cannot encode a function")
      refuses(lh.str "\255", "content: invalid UTF%-8")
      refuses(setmetatable({ type = "INT", value = 1.5 }, core.typed_mt), "content: expected an integer")
      refuses(setmetatable({ type = "NOPE" }, core.typed_mt), "content: unknown value type 'NOPE'")
    end)
  end)

  describe("errors for tables with no faithful JSON encoding, naming the path", function()
    it("NaN and infinity inside JSON", function()
      refuses({ x = 0 / 0 }, "content%.x: NaN and infinity have no JSON form")
      refuses({ list = { 1, math.huge } }, "content%.list%[2%]: NaN and infinity")
      refuses({ -math.huge }, "content%[1%]: NaN and infinity")
    end)

    it("cycles", function()
      local t = { user = {} }
      t.user.self = t
      refuses(t, "content%.user%.self: cycle: this table contains itself")
      local a = {}
      a[1] = a
      refuses(a, "content%[1%]: cycle")
      local shared = { 1 } -- the same table twice, not nested in itself, is fine
      maps({ a = shared, b = shared }, "JSON_OBJ", { a = arr { 1 }, b = arr { 1 } })
    end)

    it("nesting deeper than 128 (JSON) or the server's 100 protobuf message levels (native values)", function()
      local function nest(depth)
        local t = {}
        local c = t
        for _ = 2, depth do c[1] = {}; c = c[1] end
        return t
      end
      local got, kind = roundtrip(nest(128))
      assert.equal("JSON_ARR", kind)
      assert.is_table(got)
      refuses(nest(129), "content" .. string.rep("%[1%]", 128) .. ": nesting deeper than 128")
      -- Native values: the dev server applies protobuf-java's default recursion limit (100
      -- message levels below the request), as the real server does; the deepest value it
      -- accepts goes through, one level more is refused by the client, naming the path.
      local LIMIT = "nesting deeper than 100 protobuf message levels, the server's limit"
      local function arrays(k, inner) -- content VariableValue at level 1, each lh.array adds 2
        local v = inner or 1
        for _ = 1, k do v = lh.array { v } end
        return v
      end
      assert.equal("ARRAY", select(2, roundtrip(arrays(49))))  -- innermost VariableValue at level 99
      assert.equal("ARRAY", select(2, roundtrip(arrays(49, lh.array {})))) -- an empty Array at level 100
      refuses(arrays(50), "content" .. string.rep("%[1%]", 50) .. ": " .. LIMIT)
      refuses(arrays(100000), "content" .. string.rep("%[1%]", 50) .. ": " .. LIMIT)
      local function maps_(k) -- each lh.map adds 3 (Map > Entry > value)
        local v = 1
        for _ = 1, k do v = lh.map { { "k", v } } end
        return v
      end
      assert.equal("MAP", select(2, roundtrip(maps_(33))))
      refuses(maps_(34), "content" .. string.rep("%[1%]%[2%]", 33) .. ": " .. LIMIT)
      local function structs(k) -- each lh.struct adds 5 (Struct > InlineStruct > entry > field > value)
        local v = 1
        for _ = 1, k do v = lh.struct("s", 1, { f = v }) end
        return v
      end
      assert.equal("STRUCT", select(2, roundtrip(structs(19))))
      refuses(structs(20), "content" .. string.rep("%.f", 20) .. ": " .. LIMIT)
      assert.equal("ARRAY", select(2, roundtrip(arrays(49, lh.wf_run_id "p")))) -- a WfRunId at level 100
      refuses(arrays(49, lh.wf_run_id "p_c"), "content" .. string.rep("%[1%]", 49) .. "%.parent_wf_run_id: " .. LIMIT)
      refuses(arrays(48, lh.map { { lh.timestamp(1), 1 } }), "content" .. string.rep("%[1%]", 48) .. "%[1%]%[1%]: " .. LIMIT)
    end)

    it("sparse, mixed and non-string keys", function()
      refuses({ items = { 1, 2, nil, 4 } }, "content%.items: sparse array: key 4 but only 3 elements")
      refuses({ [2] = "x" }, "content: sparse array: key 2 but only 1 elements")
      refuses({ user = { tags = { "a", x = 1 } } }, "content%.user%.tags: mixed string and integer keys")
      refuses({ [true] = 1 }, "content: keys must be strings, or 1%.%.n %(found a boolean key%)")
      refuses({ [1.5] = 1 }, "content: keys must be strings, or 1%.%.n %(found a float key%)")
      refuses({ [{}] = 1 }, "content: keys must be strings, or 1%.%.n %(found a table key%)")
      refuses({ [0] = 1 }, "content: keys must be strings, or 1%.%.n %(found key 0%)")
      refuses({ [-1] = 1, [1] = 1 }, "content: keys must be strings, or 1%.%.n %(found key %-1%)")
      refuses(setmetatable({ x = 1 }, lh.array_mt), "content: string key in a table marked as an array")
    end)

    it("invalid UTF-8 in strings and keys", function()
      refuses({ user = { name = "\195" } }, "content%.user%.name: invalid UTF%-8 at byte 1")
      refuses({ ["k\255"] = 1 }, "content: invalid UTF%-8 at byte 2 of a key")
      refuses({ "ok", "\244\144\128\128" }, "content%[2%]: invalid UTF%-8") -- beyond U+10FFFF
    end)

    it("functions, userdata, threads, and typed values inside JSON", function()
      refuses({ f = print }, "content%.f: cannot encode a function as JSON")
      refuses({ io.stdout }, "content%[1%]: cannot encode a userdata as JSON")
      refuses({ co = coroutine.create(function() end) }, "content%.co: cannot encode a thread as JSON")
      refuses({ b = lh.bytes "x" }, "content%.b: a BYTES value cannot be inside JSON content")
      refuses({ t = lh.timestamp(0) }, "content%.t: a TIMESTAMP value cannot be inside JSON content")
      refuses({ { lh.array {} } }, "content%[1%]%[1%]: a ARRAY value cannot be inside JSON")
      refuses(lh.json_obj { w = lh.wf_run_id "x" }, "content%.w: a WF_RUN_ID value cannot be inside JSON")
      refuses(print, "content: cannot convert a function to a VariableValue")
    end)

    it("leaves the client usable after each misuse error", function()
      maps("still fine", "STR", "still fine")
    end)
  end)
end)
