-- U+0000 in strings (docs/values.md; docs/guarantees.md). It is valid UTF-8 and the wire
-- carries it; other SDKs send it. Replies: every string field comes back whole, through the
-- direct reader (src/event_reader.c) and through the generic protobuf-c decoder (messages.c,
-- value.c), never cut at the NUL. Requests: `str` content may hold NUL (whole on the wire,
-- whether the direct writer or protobuf-c packs it), JSON strings too (sent as \u0000); ids and
-- names with NUL are refused (bad_input_spec.lua).
local lh = require "littlehorse"
local devserver = require "devserver"
local bad_peer = require "bad_peer"
local pb = require "pbwire"

local core = lh.core
local len_field, varint_field = pb.len_field, pb.varint_field

local function typed(t) return setmetatable(t, core.typed_mt) end
local function arr(t) return setmetatable(t, lh.array_mt) end

-- The reply bad_peer.py's `nul` mode sends (nul_event there), byte for byte.
local function nul_content()
  local function value(member, data) return len_field(member, data) end
  local struct_field = len_field(1, value(6, "field\0value"))
  local fields_entry = len_field(1, "na\0me") .. len_field(2, struct_field)
  local struct = len_field(1, len_field(1, "Str\0uct") .. varint_field(2, 3)) .. len_field(2, len_field(1, fields_entry))
  local entry = len_field(1, value(6, "key\0")) .. len_field(2, value(6, "\0val"))
  local items = {
    value(6, "a\0b"),
    value(6, "\0"),
    value(2, '{"k":"raw\0nul"}'),
    value(3, '["esc\\u0000aped"]'),
    value(11, struct),
    value(13, len_field(1, entry)),
    value(9, len_field(1, "w\0f") .. len_field(2, len_field(1, "par\0ent"))),
    value(8, "by\0tes"),
  }
  local body = {}
  for i, item in ipairs(items) do body[i] = len_field(1, item) end
  return len_field(12, table.concat(body))
end

local function nul_event(extra)
  local wf = len_field(1, "wf\0run") .. len_field(2, len_field(1, "\0parent"))
  local evid = len_field(1, wf) .. len_field(2, len_field(1, "def\0name")) .. len_field(3, "gu\0id")
  return len_field(1, evid) .. len_field(2, varint_field(1, 1700000000)) .. len_field(3, nul_content()) .. (extra or "")
end

-- Everything the reply holds, whole.
local function check_event(ev)
  assert.same({ id = "wf\0run", parent_wf_run_id = { id = "\0parent" } }, ev.id.wf_run_id)
  assert.equal("def\0name", ev.id.external_event_def_id.name)
  assert.equal("gu\0id", ev.id.guid)
  assert.equal("ARRAY", ev.content_type)
  local items = ev.content.value
  assert.equal(8, #items)
  assert.equal("a\0b", items[1])
  assert.equal("\0", items[2])
  -- JSON text holding a raw NUL is not valid JSON: it comes back as the text, whole
  assert.equal("JSON_OBJ", items[3].type)
  assert.equal('{"k":"raw\0nul"}', items[3].value)
  assert.is_string(items[3].error)
  assert.same(arr { "esc\0aped" }, items[4])
  assert.same(typed { type = "STRUCT", name = "Str\0uct", version = 3, value = { ["na\0me"] = "field\0value" } }, items[5])
  assert.same(typed { type = "MAP", value = { { "key\0", "\0val" } } }, items[6])
  assert.same(typed { type = "WF_RUN_ID", value = { id = "w\0f", parent_wf_run_id = { id = "par\0ent" } } }, items[7])
  assert.same(typed { type = "BYTES", value = "by\0tes" }, items[8])
end

describe("U+0000 in reply strings", function()
  it("core.decode_external_event: whole through the direct reader and the generic decoder", function()
    local bytes = nul_event()
    local direct = assert(core.decode_external_event(bytes))
    local generic = assert(core.decode_external_event(bytes, "generic"))
    check_event(direct)
    check_event(generic)
    -- an unknown field sends the direct reader's input to the generic decoder
    check_event(assert(core.decode_external_event(nul_event(varint_field(60, 1)))))
  end)

  describe("from a gRPC peer", function()
    local peers = {}

    lazy_setup(function()
      assert(bad_peer.ensure_grpc())
      for _, mode in ipairs { "nul", "nulgeneric" } do
        local p = bad_peer.start(mode)
        peers[mode] = { peer = p, client = lh.client { host = "127.0.0.1", port = p.port, timeout = 10 } }
      end
    end)
    lazy_teardown(function()
      for _, p in pairs(peers) do
        p.client:close()
        p.peer:stop()
      end
    end)

    local id = { wf_run_id = "w", external_event_def_name = "d", guid = "g" }
    for _, mode in ipairs { "nul", "nulgeneric" } do
      it(mode .. " (" .. (mode == "nul" and "the direct reader" or "the generic decoder") ..
         "): every RPC, blocking and async", function()
        local c = peers[mode].client
        check_event(assert(c:get_external_event(id)))
        check_event(assert(c:get_external_event_async(id):wait(10)))
        check_event(assert(c:put_external_event(id)))
        check_event(assert(c:put_external_event_async(id):wait(10)))
        local def = assert(c:get_external_event_def("d"))
        assert.equal("def\0name", def.id.name)
        def = assert(c:put_external_event_def_async("d"):wait(10))
        assert.equal("def\0name", def.id.name)
        assert.matches("METHOD /littlehorse.LittleHorse/GetExternalEventDef", peers[mode].peer:log(), 1, true)
      end)
    end
  end)
end)

describe("U+0000 in requests, through the dev server", function()
  local DEF = "nul-strings"
  local srv, client
  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 10) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local n = 0
  -- Post content (blocking or async), read it back with GetExternalEvent: both as the reply said.
  local function round_trip(content, async)
    n = n + 1
    local req = { wf_run_id = "nul-" .. n, external_event_def_name = DEF, content = content }
    local ev
    if async then ev = assert(client:put_external_event_async(req):wait(10))
    else ev = assert(client:put_external_event(req)) end
    local got = assert(client:get_external_event(ev.id))
    assert.same(ev.content, got.content)
    assert.equal(ev.content_type, got.content_type)
    return ev.content, ev.content_type
  end

  for _, async in ipairs { false, true } do
    it((async and "async" or "blocking") .. ": str content, top level and nested, comes back whole", function()
      for _, s in ipairs { "a\0b", "\0", "\0\0", ("x\0"):rep(300) } do
        local v, kind = round_trip(s, async)
        assert.equal("STR", kind)
        assert.equal(s, v)
        v = round_trip(lh.str(s), async)
        assert.equal(s, v)
        v, kind = round_trip(lh.array { s, lh.map { { s, s } }, lh.struct("nul-struct", 1, { f = s }) }, async)
        assert.equal("ARRAY", kind)
        assert.same({ s, typed { type = "MAP", value = { { s, s } } },
                      typed { type = "STRUCT", name = "nul-struct", version = 1, value = { f = s } } }, v.value)
      end
    end)

    it((async and "async" or "blocking") .. ": JSON strings with U+0000, as tables and as text", function()
      local v, kind = round_trip({ ["k\0ey"] = "v\0al", list = { "\0" } }, async)
      assert.equal("JSON_OBJ", kind)
      assert.same({ ["k\0ey"] = "v\0al", list = arr { "\0" } }, v)
      v, kind = round_trip(lh.json_arr '["a\\u0000b", {"\\u0000": 1}]', async)
      assert.equal("JSON_ARR", kind)
      assert.same(arr { "a\0b", { ["\0"] = 1 } }, v)
    end)
  end

  it("the direct writer and protobuf-c pack a str with NUL to the same bytes (the member's)", function()
    for _, content in ipairs { "a\0b", lh.str("\0"), lh.array { "x\0y", lh.map { { "k\0", "\0v" } } },
                               lh.struct("s", 1, { f = "f\0" }) } do
      local req = { wf_run_id = "w", external_event_def_name = DEF, content = content }
      assert.equal(core.encode_put_external_event(req, "generic"), core.encode_put_external_event(req))
    end
    -- VariableValue.str (field 6), length 3, the bytes
    local bytes = core.encode_put_external_event { wf_run_id = "w", external_event_def_name = DEF, content = "a\0b" }
    assert.equal(len_field(5, len_field(6, "a\0b")), bytes:sub(-7))
  end)
end)
