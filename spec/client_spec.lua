-- End-to-end: the Lua client against the dev server, a real process over real sockets.
local lh = require "littlehorse"
local devserver = require "devserver"
local rt = require "runtime"

local DEF = "approval"

describe("client against the dev server", function()
  local srv, client

  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF, "other-event" } }, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local n = 0
  local function wf() n = n + 1; return "wf-" .. n end

  describe("put_external_event", function()
    it("stores the event and returns it as a table", function()
      local before = os.time()
      local ev, err, code = client:put_external_event {
        wf_run_id = "asdf-1234",
        external_event_def_name = DEF,
        content = { approved = true, amount = 42 },
        guid = "asdf13hoasdifoje",
        thread_run_number = 0,
        node_run_position = 3,
      }
      assert.is_nil(err)
      assert.is_nil(code)
      assert.same({ id = "asdf-1234" }, ev.id.wf_run_id)
      assert.same({ name = DEF }, ev.id.external_event_def_id)
      assert.equal("asdf13hoasdifoje", ev.id.guid)
      assert.equal("JSON_OBJ", ev.content_type)
      assert.same({ approved = true, amount = 42 }, ev.content)
      rt.check_int(ev.content.amount, "42")
      assert.equal(0, ev.thread_run_number)
      assert.equal(3, ev.node_run_position)
      assert.is_false(ev.claimed)
      -- created_at: set by the server, millisecond precision, close to now
      assert.is_true(rt.is_int(ev.created_at.seconds))
      assert.equal(0, ev.created_at.nanos % 1000000)
      assert.is_true(ev.created_at.seconds >= before - 1 and ev.created_at.seconds <= os.time() + 1)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[.%d]*Z$", tostring(ev.created_at))
    end)

    it("lets the server choose a 32-hex guid when none is given", function()
      local a = assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF })
      local b = assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF })
      assert.matches("^%x+$", a.id.guid)
      assert.equal(32, #a.id.guid)
      assert.not_equal(a.id.guid, b.id.guid)
    end)

    it("leaves thread_run_number and node_run_position nil when absent, and content nil for nil", function()
      local ev = assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF })
      assert.is_nil(ev.thread_run_number)
      assert.is_nil(ev.node_run_position)
      assert.is_nil(ev.content)
      assert.is_nil(ev.content_type)
    end)

    it("accepts a child WfRunId and external_event_def_id = { name = }", function()
      local id = { id = "child", parent_wf_run_id = { id = "parent" } }
      local ev = assert(client:put_external_event {
        wf_run_id = id, external_event_def_id = { name = "other-event" }, content = "x" })
      assert.same(id, ev.id.wf_run_id)
      assert.equal("other-event", ev.id.external_event_def_id.name)
    end)

    it("reads the stored event back with get_external_event", function()
      local ev = assert(client:put_external_event {
        wf_run_id = wf(), external_event_def_name = DEF, content = { list = { 1, 2, 3 } } })
      local got, err = client:get_external_event {
        wf_run_id = ev.id.wf_run_id, external_event_def_name = DEF, guid = ev.id.guid }
      assert.is_nil(err)
      assert.same(ev.id, got.id)
      assert.same(ev.content, got.content)
      assert.equal(tostring(ev.created_at), tostring(got.created_at))
      -- the id table of a reply is itself a valid request
      assert.same(ev.id, assert(client:get_external_event(ev.id)).id)
    end)

    it("takes a per-call timeout", function()
      assert(client:put_external_event({ wf_run_id = wf(), external_event_def_name = DEF }, { timeout = 2 }))
    end)
  end)

  describe("content mapping (Lua -> VariableValue -> Lua)", function()
    local function roundtrip(content)
      local ev, err = client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF, content = content }
      assert.is_nil(err)
      local got = assert(client:get_external_event(ev.id))
      assert.same(ev.content, got.content)
      return ev.content, ev.content_type
    end

    it("boolean -> BOOL, false included", function()
      assert.same({ true, "BOOL" }, { roundtrip(true) })
      assert.same({ false, "BOOL" }, { roundtrip(false) })
    end)

    it("integer -> INT, all 64 bits exact, zero included", function()
      -- beyond 2^53: an int64_t cdata under LuaJIT, lh.int text under 5.1 (rt.int), both ways
      for _, text in ipairs { "0", "1", "-1", "9007199254740993", "-9007199254740993", "9223372036854775807",
                              "-9223372036854775808" } do
        local got, kind = roundtrip(rt.int(text))
        assert.equal("INT", kind)
        rt.check_int(got, text)
        got, kind = roundtrip(lh.int(text)) -- decimal text, on every runtime
        assert.equal("INT", kind)
        rt.check_int(got, text)
      end
    end)

    it("float -> DOUBLE, bit-exact, zero included", function()
      for _, v in ipairs { rt.float(0), rt.float(1), 0.1, -2.5, 1e300, rt.float(2 ^ 53) } do
        local got, kind = roundtrip(v)
        if not rt.subtype and v == math.floor(v) and math.abs(v) <= 2 ^ 53 then
          -- 5.1 / LuaJIT: an integral number is an int; lh.double makes it a DOUBLE
          assert.equal("INT", kind)
          assert.equal(v, got)
          got, kind = roundtrip(lh.double(v))
        end
        assert.equal("DOUBLE", kind)
        if rt.subtype then assert.equal("float", math.type(got)) end
        assert.equal(rt.double_bytes(v), rt.double_bytes(got))
      end
    end)

    it("string -> STR, empty and non-ASCII included", function()
      assert.same({ "", "STR" }, { roundtrip("") })
      assert.same({ "héllo, 世界 🎉", "STR" }, { roundtrip("héllo, 世界 🎉") })
    end)

    it("table with keys 1..n -> JSON_ARR; string keys -> JSON_OBJ; nested", function()
      local arr, kind = roundtrip({ 1, "two", 3.5, true })
      assert.equal("JSON_ARR", kind)
      assert.same({ 1, "two", 3.5, true }, arr)
      if rt.subtype then assert.equal("float", math.type(arr[3])) end
      local big = rt.int("9007199254740993") -- exact inside JSON on every runtime (rt.int)
      local obj, okind = roundtrip({ user = { name = "ada", tags = { "a", "b" } }, n = big })
      assert.equal("JSON_OBJ", okind)
      assert.same({ user = { name = "ada", tags = { "a", "b" } }, n = big }, obj)
      rt.check_int(obj.n, "9007199254740993")
    end)

    -- 2^53 + 1 in the reply's bytes, written in the request as decimal text (the int) and as
    -- JSON text: read back exactly under every runtime (rt.int: an integer on 5.3+, an
    -- int64_t cdata under LuaJIT, lh's typed int under 5.1), never as the double 2^53.
    it("a reply carrying 9007199254740993, as a scalar int and inside JSON, reads back exactly", function()
      local text = "9007199254740993"
      local contents = {
        lh.int(text),
        lh.json_obj('{"n":' .. text .. ',"a":[' .. text .. ',-' .. text .. ',{"m":' .. text .. '}]}'),
        lh.json_arr("[" .. text .. "]"),
      }
      for _, content in ipairs(contents) do
        local ev = assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF, content = content })
        for _, reply in ipairs { ev, assert(client:get_external_event(ev.id)) } do
          local c = reply.content
          if reply.content_type == "INT" then
            rt.check_int(c, text)
            assert.equal(text, rt.int_text(c))
          elseif reply.content_type == "JSON_OBJ" then
            rt.check_int(c.n, text)
            rt.check_int(c.a[1], text)
            rt.check_int(c.a[2], "-" .. text)
            rt.check_int(c.a[3].m, text)
            assert.equal('[' .. text .. ',-' .. text .. ',{"m":' .. text .. '}]', lh.json_encode(c.a))
          else
            assert.equal("JSON_ARR", reply.content_type)
            rt.check_int(c[1], text)
            assert.equal("[" .. text .. "]", lh.json_encode(c))
          end
        end
        -- the value read back, posted again, is the same int (the reply is a valid request)
        local again = assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF, content = ev.content })
        assert.equal(ev.content_type, again.content_type)
        if again.content_type == "INT" then rt.check_int(again.content, text) end
      end
    end)

    it("empty table -> JSON_OBJ {}", function()
      local v, kind = roundtrip({})
      assert.equal("JSON_OBJ", kind)
      assert.same({}, v)
    end)

    it("lh.bytes(s) -> BYTES, binary-safe", function()
      local blob = "\0\1\2\255\254 binary"
      assert.same({ blob, "BYTES" }, { roundtrip(lh.bytes(blob)) })
    end)
  end)

  describe("server errors come back as nil, err, code", function()
    it("INVALID_ARGUMENT for an unknown ExternalEventDef", function()
      local ev, err, code = client:put_external_event { wf_run_id = wf(), external_event_def_name = "nope" }
      assert.is_nil(ev)
      assert.equal("INVALID_ARGUMENT", code)
      assert.equal("INVALID_ARGUMENT", err.code)
      assert.equal(3, err.status)
      assert.equal("No ExternalEventDef named nope", err.message)
      assert.equal("PutExternalEvent", err.method)
      assert.equal("PutExternalEvent: INVALID_ARGUMENT (3): No ExternalEventDef named nope", tostring(err))
    end)

    it("ALREADY_EXISTS for a repeated (wf_run_id, def, guid)", function()
      local req = { wf_run_id = wf(), external_event_def_name = DEF, guid = "g-1", content = 1 }
      assert(client:put_external_event(req))
      local ev, err, code = client:put_external_event(req)
      assert.is_nil(ev)
      assert.equal("ALREADY_EXISTS", code)
      assert.equal("ExternalEvent already exists", err.message)
    end)

    it("NOT_FOUND from get_external_event and get_external_event_def", function()
      local _, err, code = client:get_external_event { wf_run_id = "none", external_event_def_name = DEF, guid = "x" }
      assert.equal("NOT_FOUND", code)
      assert.equal("Requested object was not found.", err.message)
      local _, err2, code2 = client:get_external_event_def("missing-def")
      assert.equal("NOT_FOUND", code2)
      assert.equal("Couldn't find ExternalEventDef missing-def", err2.message)
    end)

    it("registers and reads ExternalEventDefs, validating names as the server does", function()
      local def = assert(client:put_external_event_def { name = "made-by-spec" })
      assert.equal("made-by-spec", def.id.name)
      assert.matches("Z$", tostring(def.created_at))
      assert.equal("made-by-spec", assert(client:get_external_event_def("made-by-spec")).id.name)
      assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = "made-by-spec" })
      local _, err, code = client:put_external_event_def { name = "not a hostname" }
      assert.equal("INVALID_ARGUMENT", code)
      assert.equal("ExternalEventDefName must be a valid hostname", err.message)
    end)
  end)

  describe("misuse raises, naming the field", function()
    local function raises(req, pattern)
      local ok, msg = pcall(function() return client:put_external_event(req) end)
      assert.is_false(ok)
      assert.matches(pattern, msg)
    end

    it("requires wf_run_id and the def name", function()
      raises({ external_event_def_name = DEF }, "bad argument #1 to 'put_external_event' %(wf_run_id: required")
      raises({ wf_run_id = "w" }, "external_event_def_name: required")
      raises({ wf_run_id = "", external_event_def_name = DEF }, "wf_run_id: must not be empty")
      raises({ wf_run_id = { parent_wf_run_id = { id = "p" } }, external_event_def_name = DEF }, "wf_run_id.id: required")
    end)

    it("checks types", function()
      raises({ wf_run_id = 42, external_event_def_name = DEF }, "wf_run_id: expected a string or a table")
      raises({ wf_run_id = "w", external_event_def_name = true }, "external_event_def_name: expected a string, got boolean")
      raises({ wf_run_id = "w", external_event_def_name = DEF, guid = 7 }, "guid: expected a string, got number")
      raises({ wf_run_id = "w", external_event_def_name = DEF, thread_run_number = "0" }, "thread_run_number: expected an integer")
      raises({ wf_run_id = "w", external_event_def_name = DEF, thread_run_number = 1.5 }, "thread_run_number: expected an integer, got a float")
      raises({ wf_run_id = "w", external_event_def_name = DEF, thread_run_number = -1 }, "thread_run_number: must be between 0 and 2147483647")
      raises({ wf_run_id = "w", external_event_def_name = DEF, thread_run_number = 2 ^ 31 }, "thread_run_number: must be between")
      raises({ wf_run_id = "w", external_event_def_name = DEF, node_run_position = 1 }, "node_run_position: needs thread_run_number")
      assert.has_error(function() client:put_external_event("not a table") end)
    end)

    it("refuses unknown fields and conflicting def fields", function()
      raises({ wf_run_id = "w", external_event_def_name = DEF, giud = "x" }, "giud: unknown field")
      raises({ wf_run_id = "w", external_event_def_name = DEF, external_event_def_id = { name = DEF } }, "not both")
    end)

    it("refuses guids the server's key format cannot hold", function()
      raises({ wf_run_id = "w", external_event_def_name = DEF, guid = "a/b" }, "guid: must not contain '/'")
      raises({ wf_run_id = "w", external_event_def_name = DEF, guid = "a\nb" }, "guid: must not contain control characters")
      raises({ wf_run_id = "w", external_event_def_name = DEF, guid = "" }, "guid: must not be empty")
    end)

    it("names the content path of a bad value", function()
      raises({ wf_run_id = "w", external_event_def_name = DEF, content = "\255\254" }, "content: invalid UTF%-8 at byte 1 %(use lh.bytes")
      raises({ wf_run_id = "w", external_event_def_name = DEF, content = print }, "content: cannot convert a function")
      raises({ wf_run_id = "w", external_event_def_name = DEF, content = { items = { 1, 2, { bad = print } } } },
             "content.items%[3%].bad: cannot encode a function")
      raises({ wf_run_id = "w", external_event_def_name = DEF, content = { user = { name = "\195" } } },
             "content.user.name: invalid UTF%-8")
      raises({ wf_run_id = "w", external_event_def_name = DEF, content = { [1] = 1, [3] = 3 } }, "content: sparse")
      raises({ wf_run_id = "w", external_event_def_name = DEF, content = { x = 0 / 0 } }, "content.x: NaN")
    end)

    it("leaves the client usable after a misuse error", function()
      pcall(client.put_external_event, client, { wf_run_id = 1 })
      assert(client:put_external_event { wf_run_id = wf(), external_event_def_name = DEF, content = "ok" })
    end)

    it("checks the per-call timeout", function()
      assert.has_error(function() client:put_external_event({ wf_run_id = "w", external_event_def_name = DEF }, { timeout = -1 }) end)
      assert.has_error(function() client:put_external_event({ wf_run_id = "w", external_event_def_name = DEF }, { timeout = "1" }) end)
    end)
  end)
end)

describe("client lifecycle", function()
  it("reports UNAVAILABLE within the deadline when no server is listening", function()
    -- Start and stop a server to get a port that is certainly closed now.
    local srv = devserver.start()
    local port = srv.port
    srv:stop()
    local c = lh.client { host = "127.0.0.1", port = port, timeout = 2 }
    local start = os.time()
    local ev, err, code = c:put_external_event { wf_run_id = "w", external_event_def_name = DEF }
    assert.is_nil(ev)
    assert.equal("UNAVAILABLE", code)
    assert.equal(14, err.status)
    assert.is_true(os.time() - start <= 3)
    c:close()
  end)

  it("close is idempotent, shared by __close and __gc, and calls after close raise", function()
    local c = lh.client { port = 1 }
    assert.matches("^littlehorse.client: 0x%x+ %(localhost:1%)$", tostring(c))
    c:close()
    c:close()
    assert.is_true(c:is_closed())
    assert.matches("%(closed%)$", tostring(c))
    assert.has_error(function() c:put_external_event { wf_run_id = "w", external_event_def_name = DEF } end,
                     "littlehorse: this client is closed")
    rt.closing(lh.client { port = 1 }, function(scoped) c = scoped end) -- a <close> variable (5.4)
    assert.is_true(c:is_closed())
  end)

  it("survives many clients being garbage collected, used or not", function()
    local srv = devserver.start { defs = { DEF } }
    for i = 1, 200 do
      local c = lh.client { host = "127.0.0.1", port = srv.port, tenant = "t" }
      if i % 20 == 0 then
        assert(c:put_external_event { wf_run_id = "gc-" .. i, external_event_def_name = DEF, guid = "g" .. i, content = i })
      end
    end
    collectgarbage()
    collectgarbage()
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    local ev = assert(c:get_external_event { wf_run_id = "gc-200", external_event_def_name = DEF, guid = "g200" })
    c:close()
    srv:stop()
    assert.equal(200, ev.content)
  end)

  it("checks client options", function()
    assert.has_error(function() lh.client { port = 0 } end)
    assert.has_error(function() lh.client { port = "x" } end)
    assert.has_error(function() lh.client { timeout = 0 } end)
    assert.has_error(function() lh.client { tenant = "" } end)
    assert.has_error(function() lh.client { hots = "x" } end, "bad argument #1 to 'client' (hots: unknown option (did you mean host?))")
  end)
end)
