-- Conformance against the official codec: every row of the "Value mapping" table (docs/values.md),
-- in both directions, checked by an independent peer built on the official npm package
-- `littlehorse-client` 0.14.0 (spec/conformance/server.js: its nice-grpc service definition
-- and generated ts-proto codec, pinned by spec/conformance/package-lock.json).
--
-- Requests: our client posts real gRPC calls to the peer; the peer decodes the bytes and
-- answers with a JSON description of what it decoded (as a `str` reply, read here with
-- lua-cjson, not with our own JSON codec). Two decodings are described:
--   * `official`: PutExternalEventRequest.decode of the official 0.14.0 codec.
--   * `raw`: an independent decoding of the same bytes with protobufjs's Reader, written
--     from the protocol's field tables. It is needed because the 0.14.0 codec
--       - has no VariableValue members 9-13 (wf_run_id, utc_timestamp, struct, array, map:
--         newer than 0.14); it skips them as unknown fields, so `official.content` is {};
--       - decodes int64 through Number and throws beyond 2^53 ("Value is larger than
--         Number.MAX_SAFE_INTEGER"), so exact 64-bit checks use `raw` (decimal strings);
--       - turns doubles into JS numbers, so bit-exact checks use `raw` (the 8 wire bytes).
--   JSON text is also parsed by JavaScript's JSON.parse (an independent RFC 8259 check).
-- Replies: the spec asks the peer for a reply by describing it; the peer encodes it with the
-- official encoders (members 2-8 by VariableValue.encode, int64 from a Long so all 64 bits
-- survive; members 9-13 as tag + length around the official WfRunId/Timestamp/StructDefId
-- encoders, since 0.14.0 lacks them), and the spec checks the Lua values we decode. Each
-- non-JSON reply value is then posted back, and the peer's raw decoding must equal the
-- description it started from: reply -> Lua -> request is lossless.
local lh = require "littlehorse"
local cjson = require "cjson" -- reads the peer's descriptions (independent of our codec)
local sh = require "sh"
local rt = require "runtime"
local core = lh.core

local PEER_DIR = "spec/conformance"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
local function dbl_hex(x) return hex(rt.double_bytes(x)) end

local read_file = sh.read_file

-- ------------------------------------------------------------------ the peer process

local function self_pid()
  return (read_file("/proc/self/stat") or ""):match("^(%d+)")
end

local function start_peer()
  rt.execute("mkdir -p build")
  local ok = rt.execute("sh " .. PEER_DIR .. "/setup.sh >build/conformance-setup.log 2>&1")
  assert(ok, "conformance peer setup failed (npm ci / node):\n" .. (read_file("build/conformance-setup.log") or ""))
  local out, pidfile = os.tmpname(), os.tmpname()
  local cmd = string.format("node %s/server.js --port 0 --parent %s >%s 2>&1 & echo $! >%s",
                            PEER_DIR, self_pid() or "0", out, pidfile)
  assert(rt.execute(cmd))
  local pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  os.remove(pidfile)
  assert(pid, "conformance peer did not start")
  local peer = { pid = pid, out = out }
  function peer.stop()
    rt.execute("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 300 do
      local stat = read_file("/proc/" .. pid .. "/stat")
      if not stat or stat:match("^%d+ %b() (%a)") == "Z" then break end
      core.sleep(0.01)
    end
    rt.execute("kill -KILL " .. pid .. " 2>/dev/null")
    os.remove(out)
  end
  for _ = 1, 1500 do -- node needs a moment to load
    local port = (read_file(out) or ""):match("LISTENING 127%.0%.0%.1:(%d+)")
    if port then
      peer.port = tonumber(port)
      return peer
    end
    core.sleep(0.01)
  end
  local log = read_file(out) or ""
  peer.stop()
  error("conformance peer did not report LISTENING:\n" .. log)
end

-- ------------------------------------------------------------------ helpers

-- Every `$problems` list in the raw decoding (unknown fields, wrong wire types, a oneof with
-- two members, lengths that overrun): there must be none.
local function problems(t, path, acc)
  acc = acc or {}
  if type(t) ~= "table" then return acc end
  for k, v in pairs(t) do
    if k == "$problems" then
      for _, p in ipairs(v) do acc[#acc + 1] = path .. ": " .. p end
    else
      problems(v, path .. "." .. tostring(k), acc)
    end
  end
  return acc
end

local function is_null(v) return v == nil or v == cjson.null end

-- Debian's lua-cjson 2.1.0 has only cjson.null; OpenResty's lua-cjson adds array_mt,
-- empty_array_mt and empty_array. Our encoder looks those up in package.loaded.cjson when it
-- encodes, so where they are missing the spec installs OpenResty-style markers (fresh tables
-- and a light userdata of its own) into the loaded module, and removes them afterwards.
local function with_openresty_cjson_markers()
  if cjson.array_mt then return function() end end
  cjson.array_mt, cjson.empty_array_mt = {}, {}
  cjson.empty_array = rt.light_userdata { lh.empty_array } -- a non-NULL light userdata
  return function() cjson.array_mt, cjson.empty_array_mt, cjson.empty_array = nil, nil, nil end
end

describe("conformance with the official littlehorse-client 0.14.0 codec", function()
  local peer, client, restore_cjson
  local n = 0

  lazy_setup(function()
    restore_cjson = with_openresty_cjson_markers()
    peer = start_peer()
    client = lh.client { host = "127.0.0.1", port = peer.port, timeout = 10 }
  end)

  lazy_teardown(function()
    if client then client:close() end
    if peer then peer.stop() end
    if restore_cjson then restore_cjson() end
  end)

  -- Post a request (content, plus request fields) to the peer; returns its description.
  local function post(content, fields)
    n = n + 1
    local req = { wf_run_id = "echo", external_event_def_name = "conformance", guid = "g-" .. n, content = content }
    for k, v in pairs(fields or {}) do req[k] = v end
    local ev, err = client:put_external_event(req)
    assert(ev, tostring(err))
    assert.equal("STR", ev.content_type)
    local d = cjson.decode(ev.content)
    assert.is_nil(d.raw_error)
    assert.same({}, problems(d.raw, "raw"))
    return d
  end

  -- The content as decoded independently; `member` is the oneof member that was set.
  local function sent(content)
    local d = post(content)
    local c = d.raw.content
    assert.is_table(c, "no content field in the request")
    if d.json_check then assert.is_true(d.json_check.ok, d.json_check.error) end
    return c, d
  end

  describe("requests (our encoding, decoded by the peer)", function()
    it("carry the envelope fields: ids, guid, thread and node numbers, tenant header", function()
      local tenant_client = lh.client { host = "127.0.0.1", port = peer.port, tenant = "acme" }
      n = n + 1
      local ev = assert(tenant_client:put_external_event {
        wf_run_id = { id = "echo", parent_wf_run_id = { id = "root" } },
        external_event_def_id = { name = "my-def" }, guid = "guid-" .. n, content = 1,
        thread_run_number = 0, node_run_position = 3,
      })
      tenant_client:close()
      local d = cjson.decode(ev.content)
      local o = d.official
      assert.same({ id = "echo", parentWfRunId = { id = "root" } }, o.wfRunId)
      assert.same({ name = "my-def" }, o.externalEventDefId)
      assert.equal("guid-" .. n, o.guid)
      assert.equal(0, o.threadRunNumber) -- present although 0
      assert.equal(3, o.nodeRunPosition)
      assert.equal(0, d.raw.thread_run_number)
      assert.same({ "acme" }, d.metadata.tenantid)
      -- the reply echoes the request's id, encoded by the official ExternalEvent encoder
      assert.same({ id = "echo", parent_wf_run_id = { id = "root" } }, ev.id.wf_run_id)
      assert.same({ name = "my-def" }, ev.id.external_event_def_id)
      assert.equal("guid-" .. n, ev.id.guid)
      -- no guid, no thread/node numbers: the fields are absent (not "" or 0)
      local ev2 = assert(client:put_external_event { wf_run_id = "echo", external_event_def_name = "d" })
      local d2 = cjson.decode(ev2.content)
      assert.is_nil(d2.raw.guid)
      assert.is_nil(d2.raw.thread_run_number)
      assert.is_nil(d2.raw.node_run_position)
      assert.is_nil(d2.official.guid)
    end)

    it("nil, lh.null and cjson.null: no content at all (NULL)", function()
      for _, v in pairs { [1] = lh.null, [2] = cjson.null, [3] = nil } do
        local d = post(v)
        assert.is_nil(d.raw.content)
        assert.is_nil(d.official.content)
      end
      local d = post(nil)
      assert.is_nil(d.raw.content)
      assert.is_nil(d.official.content)
    end)

    it("booleans: bool, false written (not dropped)", function()
      for _, b in ipairs { true, false } do
        local c, d = sent(b)
        assert.equal("bool", c["$member"])
        assert.equal(b, c.bool)
        assert.equal(b, d.official.content.bool)
      end
    end)

    it("integers: int, all 64 bits exact, 0 written", function()
      -- rt.int: beyond 2^53 an int64_t cdata under LuaJIT, lh's typed int under 5.1
      local ints = { "0", "1", "-1", "42", "9007199254740991", "-9007199254740991", "9007199254740993",
                     "-9007199254740993", "9223372036854775807", "-9223372036854775808", "4611686018427387904" }
      for _, text in ipairs(ints) do
        local c, d = sent(rt.int(text))
        assert.equal("int", c["$member"])
        assert.equal(text, c.int)
        assert.equal(text, (sent(lh.int(text))).int)
        if math.abs(tonumber(text) + 0.0) < 2 ^ 53 then
          assert.equal(tonumber(text), d.official.content.int)
        else
          -- the 0.14.0 codec cannot represent it: checked on the raw bytes above
          assert.matches("Number%.M.._SAFE_INTEGER", d.official_error)
        end
      end
    end)

    it("floats: double, bit for bit (0.0, -0.0, subnormals, extremes, inf, NaN)", function()
      local floats = { 0.0, rt.NEG0, 1.0, -1.5, 0.1, 1 / 3, 5e-324, 2.225073858507201e-308,
                       2.2250738585072014e-308, 1.7976931348623157e308, 2.0 ^ 63, math.huge, -math.huge, 0 / 0 }
      for _, v in ipairs(floats) do
        if rt.integral(v) then -- 5.1 / LuaJIT: an integral number is an int; lh.double makes a double
          assert.equal("int", (sent(v))["$member"])
          v = lh.double(v).value
        end
        local c, d = sent(rt.integral(v) and lh.double(v) or v)
        assert.equal("double", c["$member"])
        assert.equal(dbl_hex(v), c.double.hex)
        local o = d.official.content.double
        if v ~= v then assert.same({ number = "NaN" }, o)
        elseif v == math.huge then assert.same({ number = "Infinity" }, o)
        elseif v == -math.huge then assert.same({ number = "-Infinity" }, o)
        elseif v == 0 and 1 / v < 0 then assert.same({ number = "-0" }, o)
        else assert.equal(v, o) end
      end
    end)

    it("strings: str, the exact UTF-8 bytes", function()
      for _, s in ipairs { "", "plain", "héllo ✓ 🎉", "\244\143\191\191", "tab\there\nnl\1\127" } do
        local c, d = sent(s)
        assert.equal("str", c["$member"])
        assert.equal(hex(s), c.str.hex)
        assert.equal(s, d.official.content.str)
      end
    end)

    it("tables with keys 1..n: json_arr text, exact", function()
      local c = sent { 1, 2.5, "x", true, lh.null, {}, { 1 } }
      assert.equal("json_arr", c["$member"])
      assert.equal('[1,2.5,"x",true,null,{},[1]]', c.json_arr.utf8)
    end)

    it("string-keyed tables and {}: json_obj text, exact; JSON.parse agrees on the values", function()
      local c = sent {}
      assert.equal("json_obj", c["$member"])
      assert.equal("{}", c.json_obj.utf8)
      c = sent { a = { b = { c = rt.int("9007199254740993") } } }
      assert.equal('{"a":{"b":{"c":9007199254740993}}}', c.json_obj.utf8)
      local v = { name = "né", n = 7, f = 0.5, ok = false, list = { 1, 2 }, nested = { k = "v" } }
      local c2, d2 = sent(v)
      assert.equal("json_obj", c2["$member"])
      assert.equal("object", d2.json_check.type)
      assert.same(v, cjson.decode(d2.json_check.value))
    end)

    it("JSON numbers: integers exact to 64 bits, floats keep '.' or an exponent", function()
      local c, d = sent { rt.float(1), 0.1, 1e300, 5e-324, rt.NEG0, 2.0 ^ 53, rt.float(100), rt.MAXINT, rt.MININT,
                          rt.int("9007199254740993") }
      if rt.subtype then
        assert.equal("[1.0,0.1,1e+300,5e-324,-0.0,9007199254740992.0,100.0,9223372036854775807," ..
                     "-9223372036854775808,9007199254740993]", c.json_arr.utf8)
      else -- an integral number within 2^53 is an integer here (-0.0 stays a float)
        assert.equal("[1,0.1,1e+300,5e-324,-0.0,9007199254740992,100,9223372036854775807," ..
                     "-9223372036854775808,9007199254740993]", c.json_arr.utf8)
      end
      assert.equal("array", d.json_check.type)
    end)

    it("JSON strings: escaped per RFC 8259, and JSON.parse reads back the same text", function()
      local s = "q\" b\\ s/ \b\f\n\r\t \1\31 \127 é 🎉"
      local c, d = sent { s = s }
      assert.equal('{"s":"q\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f \127 é 🎉"}', c.json_obj.utf8)
      assert.equal(s, cjson.decode(d.json_check.value).s)
    end)

    it("markers: lh.empty_array, lh.array_mt, cjson.array_mt and cjson.empty_array make [] ", function()
      for _, v in ipairs { lh.empty_array, setmetatable({}, lh.array_mt), setmetatable({}, cjson.array_mt),
                           cjson.empty_array, setmetatable({}, cjson.empty_array_mt) } do
        local c = sent(v)
        assert.equal("json_arr", c["$member"])
        assert.equal("[]", c.json_arr.utf8)
      end
      local c = sent { a = lh.empty_array, b = setmetatable({}, cjson.array_mt), c = cjson.null }
      assert.equal("object", select(2, sent { a = lh.empty_array }).json_check.type)
      assert.matches('"a":%[%]', c.json_obj.utf8)
      assert.matches('"b":%[%]', c.json_obj.utf8)
      assert.matches('"c":null', c.json_obj.utf8)
    end)

    it("lh.bytes: bytes, any bytes", function()
      for _, b in ipairs { "", "\0\1\2\255", "\255\254 not UTF-8" } do
        local c, d = sent(lh.bytes(b))
        assert.equal("bytes", c["$member"])
        assert.equal(hex(b), c.bytes.hex)
        assert.equal(hex(b), d.official.content.bytes.hex)
      end
    end)

    it("lh.int, lh.double, lh.str: force the member", function()
      local c, d = sent(lh.int(3.0))
      assert.equal("int", c["$member"]); assert.equal("3", c.int); assert.equal(3, d.official.content.int)
      c, d = sent(lh.double(2))
      assert.equal("double", c["$member"]); assert.equal(dbl_hex(rt.float(2)), c.double.hex); assert.equal(2, d.official.content.double)
      c, d = sent(lh.str("42"))
      assert.equal("str", c["$member"]); assert.equal("42", c.str.utf8); assert.equal("42", d.official.content.str)
    end)

    it("lh.json_obj, lh.json_arr: tables encoded, raw text validated and sent as given", function()
      local c, d = sent(lh.json_obj('{ "a" : [1, 2.0] }'))
      assert.equal("json_obj", c["$member"]); assert.equal('{ "a" : [1, 2.0] }', d.official.content.jsonObj)
      c, d = sent(lh.json_arr(" [true] "))
      assert.equal("json_arr", c["$member"]); assert.equal(" [true] ", d.official.content.jsonArr)
      c = sent(lh.json_obj { k = 1 }); assert.equal('{"k":1}', c.json_obj.utf8)
      c = sent(lh.json_arr { 1, 2 }); assert.equal("[1,2]", c.json_arr.utf8)
      c = sent(lh.json_arr {}); assert.equal("[]", c.json_arr.utf8)
      c = sent(lh.json_obj {}); assert.equal("{}", c.json_obj.utf8)
    end)

    -- Members 9-13 are newer than the 0.14.0 codec: it skips them (official.content == {}).
    local function newer_member(c, d, member)
      assert.equal(member, c["$member"])
      assert.same({}, d.official.content)
    end

    it("lh.timestamp: utc_timestamp (member 10, decoded independently)", function()
      local cases = {
        { lh.timestamp(1.5), "1", 500000000 },
        { lh.timestamp { seconds = -1, nanos = 5 }, "-1", 5 },
        { lh.timestamp "2024-02-29T23:30:00.123456789+05:30", "1709229600", 123456789 },
        { lh.timestamp "1969-12-31T23:59:59.5-00:00", "-1", 500000000 },
        { lh.timestamp "0001-01-01T00:00:00Z", "-62135596800", 0 },
        { lh.timestamp "9999-12-31T23:59:59.999999999Z", "253402300799", 999999999 },
        { lh.timestamp(0), "0", 0 },
      }
      for _, case in ipairs(cases) do
        local c, d = sent(case[1])
        newer_member(c, d, "utc_timestamp")
        -- proto3 leaves zero scalars out of the wire bytes
        assert.equal(case[2], c.utc_timestamp.seconds or "0")
        assert.equal(case[3], c.utc_timestamp.nanos or 0)
      end
    end)

    it("lh.wf_run_id: wf_run_id (member 9), from 'parent_child' or a table", function()
      local c, d = sent(lh.wf_run_id "root_parent_child")
      newer_member(c, d, "wf_run_id")
      local w = c.wf_run_id
      assert.equal("child", w.id.utf8)
      assert.equal("parent", w.parent_wf_run_id.id.utf8)
      assert.equal("root", w.parent_wf_run_id.parent_wf_run_id.id.utf8)
      assert.is_nil(w.parent_wf_run_id.parent_wf_run_id.parent_wf_run_id)
      c = sent(lh.wf_run_id { id = "c", parent_wf_run_id = { id = "p" } })
      assert.equal("c", c.wf_run_id.id.utf8)
      assert.equal("p", c.wf_run_id.parent_wf_run_id.id.utf8)
    end)

    it("lh.array: native array (member 12); lh.null items are empty VariableValues", function()
      local c, d = sent(lh.array { 1, "a", lh.null, 2.5, { k = 1 }, lh.array {}, false })
      newer_member(c, d, "array")
      local items = c.array.items
      assert.equal(7, #items)
      assert.equal("1", items[1].int)
      assert.equal("a", items[2].str.utf8)
      assert.is_true(is_null(items[3]["$member"]))
      assert.equal(dbl_hex(2.5), items[4].double.hex)
      assert.equal('{"k":1}', items[5].json_obj.utf8)
      assert.equal("array", items[6]["$member"])
      assert.is_nil(items[6].array.items)
      assert.equal(false, items[7].bool)
      c = sent(lh.array {})
      assert.equal("array", c["$member"])
    end)

    it("lh.map: native map (member 13), keys are VariableValues too", function()
      local c, d = sent(lh.map { { "k", 1 }, { 2, lh.null }, { lh.bytes "\0", lh.array { true } } })
      newer_member(c, d, "map")
      local e = c.map.entries
      assert.equal(3, #e)
      assert.equal("k", e[1].key.str.utf8); assert.equal("1", e[1].value.int)
      assert.equal("2", e[2].key.int); assert.is_true(is_null(e[2].value["$member"]))
      assert.equal("00", e[3].key.bytes.hex); assert.equal(true, e[3].value.array.items[1].bool)
    end)

    it("lh.struct: native struct (member 11) with StructDefId name and version", function()
      local c, d = sent(lh.struct("car", 2, { make = "VW", year = 1999, tags = lh.array { "a" } }))
      newer_member(c, d, "struct")
      local s = c.struct
      assert.equal("car", s.struct_def_id.name.utf8)
      assert.equal(2, s.struct_def_id.version)
      local fields = {}
      for _, f in ipairs(s.struct.fields) do fields[f.key.utf8] = f.value.value end
      assert.equal("VW", fields.make.str.utf8)
      assert.equal("1999", fields.year.int)
      assert.equal("a", fields.tags.array.items[1].str.utf8)
    end)
  end)

  describe("replies (official encoding, decoded by us)", function()
    -- desc: a reply description table, or its JSON text
    local function reply(desc)
      n = n + 1
      local text = type(desc) == "string" and desc or cjson.encode(desc)
      local guid = type(desc) == "table" and desc.guid or ("r-" .. n)
      local ev, err = client:put_external_event {
        wf_run_id = "reply", external_event_def_name = "conformance", guid = guid, content = lh.str(text),
      }
      assert(ev, tostring(err))
      return ev
    end

    -- The peer's raw decoding of a posted value, in the reply-description format.
    local function norm(c)
      if c == nil or is_null(c["$member"]) then return {} end
      local m = c["$member"]
      local v = c[m]
      if m == "json_obj" or m == "json_arr" or m == "str" then return { [m] = v.utf8 } end
      if m == "double" then return { double_bits = v.hex } end
      if m == "bool" or m == "int" then return { [m] = v } end
      if m == "bytes" then return { bytes_hex = v.hex } end
      if m == "utc_timestamp" then return { utc_timestamp = { seconds = v.seconds or "0", nanos = v.nanos or 0 } } end
      if m == "wf_run_id" then
        local function w(x) return x and { id = x.id and x.id.utf8 or "", parent_wf_run_id = w(x.parent_wf_run_id) } end
        return { wf_run_id = w(v) }
      end
      if m == "array" then
        local items = {}
        for i, it in ipairs(v.items or {}) do items[i] = norm(it) end
        return { array = items }
      end
      if m == "map" then
        local entries = {}
        for i, e in ipairs(v.entries or {}) do entries[i] = { norm(e.key), norm(e.value) } end
        return { map = entries }
      end
      if m == "struct" then
        local fields = {}
        for _, f in ipairs(v.struct and v.struct.fields or {}) do fields[f.key.utf8] = norm(f.value.value) end
        return { struct = { name = v.struct_def_id.name.utf8, version = v.struct_def_id.version or 0, fields = fields } }
      end
      error("unexpected member " .. tostring(m))
    end

    -- A description in the same normal form (doubles as bits, defaults filled in).
    local function canon(v)
      local k = next(v)
      if k == nil then return {} end
      local x = v[k]
      if k == "double" then return { double_bits = dbl_hex(x) } end
      if k == "utc_timestamp" then return { utc_timestamp = { seconds = x.seconds, nanos = x.nanos or 0 } } end
      if k == "array" then
        local items = {}
        for i, it in ipairs(x) do items[i] = canon(it) end
        return { array = items }
      end
      if k == "map" then
        local entries = {}
        for i, e in ipairs(x) do entries[i] = { canon(e[1]), canon(e[2]) } end
        return { map = entries }
      end
      if k == "struct" then
        local fields = {}
        for name, f in pairs(x.fields) do fields[name] = canon(f) end
        return { struct = { name = x.name, version = x.version or 0, fields = fields } }
      end
      return { [k] = x }
    end

    -- reply content `desc`, decoded as `expected` (compared with assert.same, and by `check`),
    -- then posted back: the peer must decode exactly `desc` again (JSON: the same text).
    local function roundtrip(desc, kind, check)
      local ev = reply { content = desc }
      assert.equal(kind, ev.content_type)
      check(ev.content)
      local c = post(ev.content).raw.content
      assert.same(canon(desc), norm(c))
      return ev
    end

    it("NULL: absent content and an empty VariableValue both decode to nil, content_type nil", function()
      local ev = reply {}
      assert.is_nil(ev.content); assert.is_nil(ev.content_type)
      ev = reply { content = {} }
      assert.is_nil(ev.content); assert.is_nil(ev.content_type)
    end)

    it("bool: true and false as booleans", function()
      roundtrip({ bool = false }, "BOOL", function(v) assert.equal(false, v) end)
      roundtrip({ bool = true }, "BOOL", function(v) assert.equal(true, v) end)
    end)

    it("int: Lua integers, all 64 bits", function()
      for _, s in ipairs { "0", "-1", "9007199254740993", "9223372036854775807", "-9223372036854775808" } do
        roundtrip({ int = s }, "INT", function(v) rt.check_int(v, s) end)
      end
    end)

    it("double: Lua floats, bit for bit", function()
      for _, x in ipairs { rt.float(0), rt.NEG0, rt.float(1), 5e-324, 2.225073858507201e-308, 1.7976931348623157e308,
                           math.huge, 0.1 } do
        local ev = reply { content = { double_bits = dbl_hex(x) } }
        assert.equal("DOUBLE", ev.content_type)
        if rt.subtype then assert.equal("float", math.type(ev.content)) end
        assert.equal(dbl_hex(x), dbl_hex(ev.content))
        if rt.integral(ev.content) then
          -- 5.1 / LuaJIT: posted back as it is, an integral number is an int; lh.double keeps it a double
          assert.same({ int = string.format("%d", x) }, norm(post(ev.content).raw.content))
          assert.same({ double_bits = dbl_hex(x) }, norm(post(lh.double(ev.content)).raw.content))
        else
          assert.same({ double_bits = dbl_hex(x) }, norm(post(ev.content).raw.content))
        end
      end
    end)

    it("str: Lua strings; bytes: Lua strings with any bytes", function()
      for _, s in ipairs { "", "héllo 🎉", "line\nbreak" } do
        roundtrip({ str = s }, "STR", function(v) assert.equal(s, v) end)
      end
      -- bytes come back as plain strings; posted again they are strings (str), so wrap them
      local ev = reply { content = { bytes_hex = "00ff0102" } }
      assert.equal("BYTES", ev.content_type)
      assert.equal("\0\255\1\2", ev.content)
      assert.same({ bytes_hex = "00ff0102" }, norm(post(lh.bytes(ev.content)).raw.content))
    end)

    it("json_obj / json_arr: tables with exact integers, floats kept, lh.null, arrays with lh.array_mt", function()
      local text = '{"n":9007199254740993,"f":1.0,"z":null,"a":[],"l":[1,[2]],"s":"\\u00e9\\ud83c\\udf89","o":{}}'
      local ev = reply { content = { json_obj = text } }
      assert.equal("JSON_OBJ", ev.content_type)
      local v = ev.content
      rt.check_int(v.n, "9007199254740993")
      assert.equal(1, v.f)
      if rt.subtype then assert.equal("float", math.type(v.f)) end
      assert.equal(lh.null, v.z)
      assert.equal(lh.array_mt, getmetatable(v.a)); assert.is_nil(next(v.a))
      assert.equal(lh.array_mt, getmetatable(v.l)); assert.equal(lh.array_mt, getmetatable(v.l[2]))
      assert.equal("é🎉", v.s)
      assert.is_nil(getmetatable(v.o))
      -- decode -> encode gives the same JSON (members may come in another order)
      local c, d = sent(v)
      assert.equal("json_obj", c["$member"])
      -- 5.1 / LuaJIT: 1.0 decoded is the number 1, an integer when encoded again
      local f_text = rt.subtype and "1.0" or "1"
      assert.equal(#text - #'\\u00e9\\ud83c\\udf89' + #"é🎉" - #"1.0" + #f_text, #c.json_obj.utf8)
      assert.same(cjson.decode(text), cjson.decode(d.json_check.value))
      assert.matches('"n":9007199254740993', c.json_obj.utf8)
      assert.matches('"f":' .. f_text:gsub("%.", "%%."), c.json_obj.utf8)
      assert.matches('"a":%[%]', c.json_obj.utf8)

      ev = roundtrip({ json_arr = "[1,2.5,null,[],{},true]" }, "JSON_ARR", function(a)
        assert.equal(lh.array_mt, getmetatable(a))
        rt.check_int(a[1], "1")
        assert.equal(2.5, a[2]); assert.equal(lh.null, a[3])
        assert.equal(lh.array_mt, getmetatable(a[4])); assert.is_nil(getmetatable(a[5]))
        assert.equal(true, a[6])
      end)
      roundtrip({ json_arr = "[]" }, "JSON_ARR", function(a) assert.equal(lh.array_mt, getmetatable(a)) end)
      roundtrip({ json_obj = "{}" }, "JSON_OBJ", function(o) assert.is_nil(next(o)) end)
    end)

    it("json text the server kept although malformed comes back raw, typed, with the parse error", function()
      local ev = reply { content = { json_obj = "{oops" } }
      assert.equal("JSON_OBJ", ev.content_type)
      assert.equal(core.typed_mt, getmetatable(ev.content))
      assert.equal("JSON_OBJ", ev.content.type)
      assert.equal("{oops", ev.content.value)
      assert.matches("^at byte 2: ", ev.content.error)
    end)

    it("utc_timestamp: timestamp objects with RFC 3339 tostring", function()
      local cases = {
        { "1700000000", 123456789, "2023-11-14T22:13:20.123456789Z" },
        { "1700000000", 0, "2023-11-14T22:13:20Z" },
        { "1700000000", 5000000, "2023-11-14T22:13:20.005Z" },
        { "1700000000", 5000, "2023-11-14T22:13:20.000005Z" },
        { "-1", 500000000, "1969-12-31T23:59:59.500Z" },
        { "-62135596800", 0, "0001-01-01T00:00:00Z" },
        { "253402300799", 999999999, "9999-12-31T23:59:59.999999999Z" },
      }
      for _, case in ipairs(cases) do
        roundtrip({ utc_timestamp = { seconds = case[1], nanos = case[2] } }, "TIMESTAMP", function(t)
          assert.equal(core.timestamp_mt, getmetatable(t))
          assert.equal(case[1], rt.int_text(t.seconds))
          assert.equal(case[2], t.nanos)
          assert.equal(case[3], tostring(t))
          assert.equal(lh.timestamp(case[3]), t) -- and the RFC 3339 text parses back to it
        end)
      end
    end)

    it("wf_run_id: { type = 'WF_RUN_ID', value = { id =, parent_wf_run_id = } }", function()
      roundtrip({ wf_run_id = { id = "c", parent_wf_run_id = { id = "p" } } }, "WF_RUN_ID", function(v)
        assert.equal(core.typed_mt, getmetatable(v))
        assert.same({ type = "WF_RUN_ID", value = { id = "c", parent_wf_run_id = { id = "p" } } }, v)
      end)
    end)

    it("array: { type = 'ARRAY', value = { ... } } with lh.null items, nested", function()
      local desc = { array = { { int = "1" }, {}, { str = "x" }, { array = { { bool = true } } },
                               { double_bits = dbl_hex(rt.NEG0) }, { json_obj = '{"k":[1]}' } } }
      roundtrip(desc, "ARRAY", function(v)
        assert.equal(core.typed_mt, getmetatable(v))
        assert.equal("ARRAY", v.type)
        local a = v.value
        assert.equal(6, #a)
        assert.equal(1, a[1]); assert.equal(lh.null, a[2]); assert.equal("x", a[3])
        assert.same({ type = "ARRAY", value = { true } }, a[4])
        assert.equal(dbl_hex(rt.NEG0), dbl_hex(a[5]))
        assert.same({ k = { 1 } }, a[6])
      end)
      local ev = reply '{"content":{"array":[]}}'
      assert.equal("ARRAY", ev.content_type)
      assert.same({ type = "ARRAY", value = {} }, ev.content)
      assert.same({ array = {} }, norm(post(ev.content).raw.content))
    end)

    it("map: { type = 'MAP', value = { {k, v}, ... } }, in wire order", function()
      local desc = { map = { { { str = "k" }, { int = "-9223372036854775808" } }, { { int = "2" }, {} },
                             { { wf_run_id = { id = "w" } }, { utc_timestamp = { seconds = "1", nanos = 1 } } } } }
      roundtrip(desc, "MAP", function(v)
        assert.equal("MAP", v.type)
        local e = v.value
        assert.equal(3, #e)
        assert.same({ "k", rt.MININT }, e[1])
        assert.same({ 2, lh.null }, e[2])
        assert.same({ type = "WF_RUN_ID", value = { id = "w" } }, e[3][1])
        assert.equal("1970-01-01T00:00:01.000000001Z", tostring(e[3][2]))
      end)
    end)

    it("struct: { type = 'STRUCT', name =, version =, value = fields }", function()
      local desc = { struct = { name = "car", version = 3, fields = {
        make = { str = "VW" }, year = { int = "1999" }, owner = {}, parts = { array = { { str = "wheel" } } } } } }
      roundtrip(desc, "STRUCT", function(v)
        assert.equal(core.typed_mt, getmetatable(v))
        assert.equal("STRUCT", v.type); assert.equal("car", v.name); assert.equal(3, v.version)
        assert.equal("VW", v.value.make); assert.equal(1999, v.value.year); assert.equal(lh.null, v.value.owner)
        assert.same({ type = "ARRAY", value = { "wheel" } }, v.value.parts)
      end)
    end)

    it("created_at: a timestamp object (official ISO encoding, and full nanosecond precision)", function()
      local ev = reply { created_at = "2024-01-02T03:04:05.678Z" }
      assert.equal(core.timestamp_mt, getmetatable(ev.created_at))
      assert.equal("2024-01-02T03:04:05.678Z", tostring(ev.created_at))
      assert.equal(678000000, ev.created_at.nanos)
      ev = reply { created_at = { seconds = "1700000000", nanos = 1 } }
      assert.equal("2023-11-14T22:13:20.000000001Z", tostring(ev.created_at))
      ev = reply { created_at = { seconds = "-62135596800", nanos = 0 } }
      assert.equal("0001-01-01T00:00:00Z", tostring(ev.created_at))
    end)

    it("thread_run_number 0 and node_run_position present, claimed, a server-chosen guid", function()
      local ev = reply { thread_run_number = 0, node_run_position = 7, claimed = true, guid = "0123abcd" }
      assert.equal(0, ev.thread_run_number)
      assert.equal(7, ev.node_run_position)
      assert.is_true(ev.claimed)
      assert.equal("0123abcd", ev.id.guid)
      assert.same({ id = "reply" }, ev.id.wf_run_id)
      ev = reply {}
      assert.is_nil(ev.thread_run_number)
      assert.is_nil(ev.node_run_position)
      assert.is_false(ev.claimed)
    end)
  end)
end)
