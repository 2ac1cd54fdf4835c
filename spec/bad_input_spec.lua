-- Bad input, one row per `it`: every row ends in a clear raised error that names the field
-- (misuse) or in `nil, err, code` (runtime), and the same client then still posts a valid event.
-- See docs/guarantees.md ("Bad input").
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local bad_peer = require "bad_peer"
local rt = require "runtime"

local DEF = "bad-input"
local MiB = 1024 * 1024

-- One sample of every Lua type (a full userdata, a thread and a light userdata included).
local SAMPLES = {
  ["nil"] = nil,
  boolean = true,
  integer = 42,
  float = 1.5,
  string = "text",
  table = {},
  ["function"] = print,
  userdata = io.stdout,
  thread = coroutine.create(function() end),
  lightuserdata = lh.null,
}
local TYPES = { "boolean", "integer", "float", "string", "table", "function", "userdata", "thread", "lightuserdata" }

local nest_json = require "nest" -- n tables, each the only element of the previous one

local function nest_native(n) -- n lh.array values, each the only item of the previous one
  local v = 1
  for _ = 1, n do v = lh.array { v } end
  return v
end

local function parent_chain(n) -- a WfRunId with n ancestors
  local id = { id = "root" }
  for i = 1, n do id = { id = "child" .. i, parent_wf_run_id = id } end
  return id
end

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

describe("bad input", function()
  local srv, client
  local n = 0
  local function wf() n = n + 1; return "bad-input-" .. n end
  local function valid(extra)
    local req = { wf_run_id = wf(), external_event_def_name = DEF, content = { ok = true } }
    for k, v in pairs(extra or {}) do req[k] = v end
    return req
  end

  -- The row's error must be a string naming `where` (a field path) and matching `what`.
  local function raises(fn, where, what)
    local ok, err = pcall(fn)
    assert.is_false(ok, "expected an error naming " .. where)
    assert.is_string(err, "errors are strings")
    assert.matches(escape(where), err, 1)
    if what then assert.matches(what, err) end
    return err
  end

  -- After every row: the same client still posts a valid event.
  local function still_usable(c)
    local req = valid()
    local ev, err = (c or client):put_external_event(req)
    assert.is_nil(err)
    assert.equal(req.wf_run_id, ev.id.wf_run_id.id)
  end

  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 10) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  after_each(function() still_usable() end)

  describe("every wrong type for every request field", function()
    -- field -> { types it accepts, path named in the error, extra fields the row needs }
    local FIELDS = {
      { "wf_run_id", { string = true, table = true } },
      { "external_event_def_name", { string = true } },
      { "external_event_def_id", { table = true }, drop = "external_event_def_name" },
      { "guid", { string = true } },
      { "thread_run_number", { integer = true } },
      { "node_run_position", { integer = true }, extra = { thread_run_number = 0 } },
    }
    for _, f in ipairs(FIELDS) do
      local name, ok_types = f[1], f[2]
      for _, ty in ipairs(TYPES) do
        if not ok_types[ty] then
          it(("put_external_event: %s = <%s>"):format(name, ty), function()
            local req = valid(f.extra)
            if f.drop then req[f.drop] = nil end
            req[name] = SAMPLES[ty]
            raises(function() client:put_external_event(req) end,
                   "bad argument #1 to 'put_external_event' (" .. name)
          end)
        end
      end
    end

    for _, ty in ipairs { "function", "userdata", "thread" } do
      it(("put_external_event: content = <%s> (top level and nested, path named)"):format(ty), function()
        raises(function() client:put_external_event(valid { content = SAMPLES[ty] }) end,
               "(content: ", ty)
        raises(function() client:put_external_event(valid { content = { a = { b = SAMPLES[ty] } } }) end,
               "(content.a.b: ", ty)
        raises(function() client:put_external_event(valid { content = { 1, 2, SAMPLES[ty] } }) end,
               "(content[3]: ", ty)
        raises(function() client:put_external_event(valid { content = lh.array { 1, SAMPLES[ty] } }) end,
               "content[2]", ty)
      end)
    end

    for _, ty in ipairs { "nil", "boolean", "integer", "float", "string", "function", "userdata", "thread", "lightuserdata" } do
      it(("put_external_event: the request itself is <%s>"):format(ty), function()
        raises(function() client:put_external_event(SAMPLES[ty]) end,
               "bad argument #1 to 'put_external_event' (", "request table")
      end)
    end

    for _, ty in ipairs { "boolean", "integer", "string", "function", "userdata", "thread" } do
      it(("put_external_event: the call options are <%s>"):format(ty), function()
        raises(function() client:put_external_event(valid(), SAMPLES[ty]) end,
               "bad argument #2 to 'put_external_event' (", "call options")
      end)
    end

    for _, t in ipairs { "soon", -1, 0, 0 / 0, math.huge, -math.huge, 1e10, true } do
      it(("put_external_event: timeout = %s"):format(tostring(t)), function()
        raises(function() client:put_external_event(valid(), { timeout = t }) end,
               "bad argument #2 to 'put_external_event' (timeout: ")
      end)
    end

    it("put_external_event: unknown fields, non-string keys, both def forms", function()
      raises(function() client:put_external_event(valid { giud = "x" }) end, "(giud: ", "unknown field")
      raises(function() client:put_external_event(valid { [1] = "x" }) end, "put_external_event", "string")
      raises(function() client:put_external_event(valid { [true] = "x" }) end, "put_external_event", "string")
      raises(function() client:put_external_event(valid { external_event_def_id = { name = DEF } }) end,
             "external_event_def", "not both")
      local r = valid { external_event_def_id = { name = DEF, version = 1 } }
      r.external_event_def_name = nil
      raises(function() client:put_external_event(r) end, "(external_event_def_id.version: ", "unknown field")
      raises(function() client:put_external_event(valid { wf_run_id = { id = "x", parent = "y" } }) end,
             "wf_run_id", "unknown field")
    end)

    it("methods called with a wrong self raise, naming the expected type", function()
      for _, self in ipairs { {}, "client", 1, io.stdout, lh.null } do
        raises(function() client.put_external_event(self, valid()) end, "bad argument #1", "littlehorse.client")
        raises(function() client.get_external_event_def(self, "x") end, "bad argument #1", "littlehorse.client")
      end
      raises(function() client.put_external_event() end, "bad argument #1", "littlehorse.client")
    end)

    it("a request behind a proxy (fields only through __index) is read raw: the fields are not seen", function()
      local proxy = setmetatable({}, { __index = valid(), __pairs = function() error("never called") end })
      raises(function() client:put_external_event(proxy) end, "(wf_run_id: ", "required")
    end)

    -- Call options are read raw, like requests: what an __index would answer (here a bad
    -- value) is not seen, and nothing leaks (the asan and valgrind suites check the "nothing").
    it("call options behind __index are read raw: the metamethod is not called", function()
      local c = lh.client { host = "127.0.0.1", port = srv.port, tenant = string.rep("t", 40) }
      local reads = 0
      for _, field in ipairs { "metadata", "timeout", "reply" } do
        local opts = setmetatable({}, { __index = function(_, k)
          reads = reads + 1
          if k == "metadata" then return { ["x-bad"] = "bad\1value" } end
          return "soon"
        end })
        assert(c:put_external_event(valid(), opts), field)
        assert(c:put_external_event_async(valid(), opts):wait(5), field)
      end
      assert.equal(0, reads)
      still_usable(c)
      c:close()
    end)

    it("put_external_event: required fields missing", function()
      raises(function() client:put_external_event { external_event_def_name = DEF } end, "(wf_run_id: ", "required")
      raises(function() client:put_external_event { wf_run_id = wf() } end, "(external_event_def_name: ", "required")
      raises(function() client:put_external_event { wf_run_id = {}, external_event_def_name = DEF } end,
             "(wf_run_id.id: ", "required")
      raises(function() client:put_external_event { wf_run_id = wf(), external_event_def_id = {} } end,
             "(external_event_def_id.name: ", "required")
      raises(function() client:put_external_event(valid { node_run_position = 1 }) end,
             "(node_run_position: ", "thread_run_number")
    end)

    it("get_external_event: wrong types, missing guid, fields it does not take", function()
      local id = { wf_run_id = wf(), external_event_def_name = DEF, guid = "g" }
      for _, ty in ipairs { "boolean", "integer", "table", "function", "userdata", "thread" } do
        local bad = { wf_run_id = id.wf_run_id, external_event_def_name = DEF, guid = SAMPLES[ty] }
        raises(function() client:get_external_event(bad) end, "bad argument #1 to 'get_external_event' (guid: ")
      end
      raises(function() client:get_external_event { wf_run_id = wf(), external_event_def_name = DEF } end,
             "(guid: ", "required")
      raises(function() client:get_external_event { wf_run_id = wf(), external_event_def_name = DEF, guid = "g", content = 1 } end,
             "(content: ", "unknown field")
      raises(function() client:get_external_event("not a table") end, "get_external_event")
      -- and a well-formed id that does not exist is a runtime error, not a raise
      local ev, err, code = client:get_external_event(id)
      assert.is_nil(ev)
      assert.equal("NOT_FOUND", code)
      assert.equal("NOT_FOUND", err.code)
    end)

    it("put_external_event_def / get_external_event_def: wrong types and values", function()
      for _, ty in ipairs { "nil", "boolean", "integer", "function", "userdata", "thread" } do
        raises(function() client:put_external_event_def(SAMPLES[ty]) end, "bad argument #1 to 'put_external_event_def'")
        raises(function() client:get_external_event_def(SAMPLES[ty]) end, "bad argument #1 to 'get_external_event_def'")
      end
      raises(function() client:put_external_event_def "" end, "put_external_event_def", "empty")
      raises(function() client:put_external_event_def {} end, "(name: ", "required")
      raises(function() client:put_external_event_def { name = "x", seconds_after_put = -1 } end, "(seconds_after_put: ")
      raises(function() client:put_external_event_def { name = "x", seconds_after_put = 1.5 } end, "(seconds_after_put: ")
      raises(function() client:put_external_event_def { name = "x", seconds_after_put = "1" } end, "(seconds_after_put: ")
      raises(function() client:put_external_event_def { name = "x", retention = 1 } end, "(retention: ", "unknown field")
      raises(function() client:get_external_event_def { name = "x", other = 1 } end, "(other: ", "unknown field")
    end)

    it("lh.client: wrong option types and values raise and name the option", function()
      raises(function() lh.client "localhost" end, "bad argument #1 to 'client'")
      raises(function() lh.client { host = "" } end, "(host: ")
      raises(function() lh.client { host = 5 } end, "(host: ")
      for _, p in ipairs { 0, 65536, -1, 1.5, "2023", true } do
        raises(function() lh.client { host = "127.0.0.1", port = p } end, "(port: ")
      end
      for _, t in ipairs { 0, -1, 0 / 0, math.huge, "10", true } do
        raises(function() lh.client { host = "127.0.0.1", port = srv.port, timeout = t } end, "timeout")
      end
      raises(function() lh.client { target = 5 } end, "(target: ")
      raises(function() lh.client { target = "127.0.0.1:1", tenant = 5 } end, "tenant")
      raises(function() lh.client { target = "127.0.0.1:1", tenant = "" } end, "tenant")
      raises(function() lh.client { target = "127.0.0.1:1", tenant = "a\0b" } end, "tenant")
      raises(function() lh.client { hots = "x" } end, "(hots: ", "unknown option")
    end)
  end)

  describe("content", function()
    it("a table that contains itself (directly, and through an array) is refused", function()
      local t = { a = 1 }
      t.self = t
      raises(function() client:put_external_event(valid { content = t }) end, "(content.self: ")
      local arr = { 1, 2 }
      arr[3] = { x = arr }
      raises(function() client:put_external_event(valid { content = { list = arr } }) end, "(content.list[3].x: ")
    end)

    it("JSON nesting: 128 levels are posted, 129 are refused, 100000 are refused without a crash", function()
      local ev = assert(client:put_external_event(valid { content = nest_json(128) }))
      assert.equal("JSON_ARR", ev.content_type)
      raises(function() client:put_external_event(valid { content = nest_json(129) }) end, "content", "128")
      raises(function() client:put_external_event(valid { content = nest_json(100000) }) end, "content", "128")
    end)

    it("native nesting (lh.array, lh.map, parent WfRunIds) past the server's limit is refused without a crash", function()
      assert(client:put_external_event(valid { content = nest_native(40) }))
      raises(function() client:put_external_event(valid { content = nest_native(100) }) end, "content", "deeper than")
      raises(function() client:put_external_event(valid { content = nest_native(100000) }) end, "content", "deeper than")
      local m = 1
      for _ = 1, 100 do m = lh.map { { "k", m } } end
      raises(function() client:put_external_event(valid { content = m }) end, "content", "deeper than")
      raises(function() client:put_external_event(valid { wf_run_id = parent_chain(100) }) end, "wf_run_id", "deeper than")
      raises(function() client:put_external_event(valid { wf_run_id = parent_chain(100000) }) end, "wf_run_id", "deeper than")
    end)

    it("NaN and infinity inside JSON are refused, naming the path", function()
      for _, x in ipairs { 0 / 0, math.huge, -math.huge } do
        raises(function() client:put_external_event(valid { content = { a = { x = x } } }) end, "(content.a.x: ")
        raises(function() client:put_external_event(valid { content = { 1, x } }) end, "(content[2]: ")
      end
    end)

    it("a top-level NaN or infinity is a legal DOUBLE (IEEE 754 value, not JSON) and round-trips", function()
      for _, x in ipairs { 0 / 0, math.huge, -math.huge } do
        local ev, err = client:put_external_event(valid { content = x })
        assert.is_nil(err)
        assert.equal("DOUBLE", ev.content_type)
        if x ~= x then assert.is_true(ev.content ~= ev.content) else assert.equal(x, ev.content) end
      end
    end)

    it("invalid UTF-8 is refused wherever text goes (content, JSON keys and values, ids, guid)", function()
      local BAD = { "\255", "\195", "\192\175", "\237\160\128", "\244\144\128\128", "ok\226\130" }
      for _, s in ipairs(BAD) do
        raises(function() client:put_external_event(valid { content = s }) end, "(content: ", "UTF%-8")
        raises(function() client:put_external_event(valid { content = { v = s } }) end, "(content.v: ", "UTF%-8")
        raises(function() client:put_external_event(valid { content = { [s] = 1 } }) end, "content", "UTF%-8")
        raises(function() client:put_external_event(valid { wf_run_id = s }) end, "(wf_run_id: ", "UTF%-8")
        raises(function() client:put_external_event(valid { external_event_def_name = s }) end,
               "(external_event_def_name: ", "UTF%-8")
        raises(function() client:put_external_event(valid { guid = s }) end, "(guid: ", "UTF%-8")
        raises(function() client:put_external_event(valid { content = lh.str(s) }) end, "content", "UTF%-8")
      end
      -- the same bytes are fine as lh.bytes
      local ev = assert(client:put_external_event(valid { content = lh.bytes("\255\195\0") }))
      assert.equal("\255\195\0", ev.content)
    end)

    it("NUL bytes in ids and names are refused (the server keys on them); str content carries them", function()
      raises(function() client:put_external_event(valid { wf_run_id = "a\0b" }) end, "(wf_run_id: ", "NUL")
      raises(function() client:put_external_event(valid { wf_run_id = { id = "a", parent_wf_run_id = "b\0" } }) end,
             "(wf_run_id.parent_wf_run_id: ", "NUL")
      raises(function() client:put_external_event(valid { guid = "a\0b" }) end, "(guid: ", "NUL")
      raises(function() client:put_external_event(valid { external_event_def_name = "a\0b" }) end,
             "(external_event_def_name: ", "NUL")
      raises(function() client:put_external_event(valid { content = lh.struct("s\0", 1, { a = 1 }) }) end,
             "(content.name: ", "NUL")
      raises(function() client:put_external_event(valid { content = lh.struct("s", 1, { ["a\0"] = 1 }) }) end,
             "content", "NUL")
      raises(function() client:put_external_event(valid { content = lh.wf_run_id { id = "a\0" } }) end, "content", "NUL")
      raises(function() client:get_external_event_def("a\0b") end, "get_external_event_def", "NUL")
      raises(function() client:put_external_event_def { name = "a\0b" } end, "(name: ", "NUL")
      local ev = assert(client:put_external_event(valid { content = "a\0b" }))
      assert.equal("a\0b", ev.content)
    end)

    it("sparse arrays, mixed keys and odd keys are refused", function()
      raises(function() client:put_external_event(valid { content = { 1, nil, 3 } }) end, "content")
      raises(function() client:put_external_event(valid { content = { 1, a = 2 } }) end, "content")
      raises(function() client:put_external_event(valid { content = { [1.5] = 1 } }) end, "content")
      raises(function() client:put_external_event(valid { content = { [true] = 1 } }) end, "content")
      raises(function() client:put_external_event(valid { content = { [print] = 1 } }) end, "content")
    end)

    it("malformed typed values and constructors' misuse are refused", function()
      raises(function() client:put_external_event(valid { content = lh.json_obj "[1]" }) end, "content")
      raises(function() client:put_external_event(valid { content = lh.json_arr "{}" }) end, "content")
      raises(function() client:put_external_event(valid { content = lh.json_obj "{" }) end, "content", "JSON")
      raises(function() client:put_external_event(valid { content = lh.json_obj "{\"a\":NaN}" }) end, "content", "JSON")
      local forged = setmetatable({ type = "NOPE", value = 1 }, core.typed_mt)
      raises(function() client:put_external_event(valid { content = forged }) end, "content", "NOPE")
      local forged2 = setmetatable({ value = 1 }, core.typed_mt)
      raises(function() client:put_external_event(valid { content = forged2 }) end, "content")
      local ts = setmetatable({ seconds = "x" }, core.timestamp_mt)
      raises(function() client:put_external_event(valid { content = ts }) end, "content.seconds")
      local ts2 = setmetatable({ seconds = 253402300800, nanos = 0 }, core.timestamp_mt) -- 10000-01-01
      raises(function() client:put_external_event(valid { content = ts2 }) end, "content.seconds", "range")
      local ts3 = setmetatable({ seconds = 0, nanos = -1 }, core.timestamp_mt)
      raises(function() client:put_external_event(valid { content = ts3 }) end, "content.nanos", "range")
    end)
  end)

  describe("numbers, empty strings", function()
    for _, v in ipairs { -1, rt.MININT, 2147483648, rt.MAXINT, 1.5, 0 / 0, math.huge, -math.huge } do
      it(("thread_run_number = %s and node_run_position = %s are refused"):format(tostring(v), tostring(v)), function()
        raises(function() client:put_external_event(valid { thread_run_number = v }) end, "(thread_run_number: ")
        raises(function() client:put_external_event(valid { thread_run_number = 0, node_run_position = v }) end,
               "(node_run_position: ")
      end)
    end

    it("the int32 bounds themselves (0, 2147483647, 2.0) are accepted", function()
      local ev = assert(client:put_external_event(valid { thread_run_number = 2147483647, node_run_position = 0 }))
      assert.equal(2147483647, ev.thread_run_number)
      assert.equal(0, ev.node_run_position)
      ev = assert(client:put_external_event(valid { thread_run_number = 2.0 }))
      assert.equal(2, ev.thread_run_number)
    end)

    it("empty strings are refused for ids and names, and are a legal STR content", function()
      raises(function() client:put_external_event(valid { wf_run_id = "" }) end, "(wf_run_id: ", "empty")
      raises(function() client:put_external_event(valid { wf_run_id = { id = "" } }) end, "(wf_run_id.id: ", "empty")
      raises(function() client:put_external_event(valid { wf_run_id = { id = "a", parent_wf_run_id = { id = "" } } }) end,
             "(wf_run_id.parent_wf_run_id.id: ", "empty")
      raises(function() client:put_external_event(valid { external_event_def_name = "" }) end,
             "(external_event_def_name: ", "empty")
      raises(function() client:put_external_event { wf_run_id = wf(), external_event_def_id = { name = "" } } end,
             "(external_event_def_id.name: ", "empty")
      raises(function() client:put_external_event(valid { guid = "" }) end, "(guid: ", "empty")
      raises(function() client:put_external_event(valid { guid = "a/b" }) end, "(guid: ", "/")
      raises(function() client:put_external_event(valid { guid = "a\nb" }) end, "(guid: ", "control")
      local ev = assert(client:put_external_event(valid { content = "" }))
      assert.equal("STR", ev.content_type)
      assert.equal("", ev.content)
    end)
  end)

  describe("payload size", function()
    it("a request just under the 4 MiB message limit is posted", function()
      local ev, err = client:put_external_event(valid { content = lh.bytes(string.rep("x", 4 * MiB - 4096)) })
      assert.is_nil(err)
      assert.equal(4 * MiB - 4096, #ev.content)
    end)

    -- Chosen contract: an oversized request is a runtime failure, `nil, err, "RESOURCE_EXHAUSTED"`
    -- (the code gRPC gives for the same limit on the server side), decided before anything is
    -- sent: a peer that counts what reaches it sees no connection at all.
    it("a request over 4 MiB is RESOURCE_EXHAUSTED before anything is sent", function()
      local peer = bad_peer.start("count")
      local c = lh.client { target = peer.target, timeout = 5 }
      local ok, e = pcall(function()
        for _, content in ipairs { lh.bytes(string.rep("x", 5 * MiB)), { blob = string.rep("y", 5 * MiB) },
                                   string.rep("z", 4 * MiB + 1) } do
          local t0 = core.now()
          local ev, err, code = c:put_external_event(valid { content = content })
          assert.is_nil(ev)
          assert.equal("RESOURCE_EXHAUSTED", code)
          assert.matches("larger than", err.message)
          assert.is_true(core.now() - t0 < 2.5, "decided locally, not by the 5 s deadline")
        end
        core.sleep(0.2)
        assert.equal("", peer:log():gsub("LISTENING[^\n]*\n", ""), "nothing may reach the peer")
      end)
      c:close()
      peer:stop()
      assert(ok, e)
      -- and the dev server's client is as usable as ever (checked after each row)
      local ev, _, code = client:put_external_event(valid { content = lh.bytes(string.rep("x", 5 * MiB)) })
      assert.is_nil(ev)
      assert.equal("RESOURCE_EXHAUSTED", code)
    end)
  end)

  describe("closed clients", function()
    it("every call on a closed client raises 'closed'; close() is idempotent", function()
      local c = lh.client { host = "127.0.0.1", port = srv.port }
      assert(c:put_external_event(valid()))
      c:close()
      c:close()
      assert.is_true(c:is_closed())
      assert.matches("closed", tostring(c))
      raises(function() c:put_external_event(valid()) end, "closed")
      raises(function() c:get_external_event { wf_run_id = "w", external_event_def_name = DEF, guid = "g" } end, "closed")
      raises(function() c:put_external_event_def "x" end, "closed")
      raises(function() c:get_external_event_def "x" end, "closed")
      raises(function() c:post_event(wf(), DEF, 1) end, "closed")
      if c.put_external_event_async then
        raises(function() c:put_external_event_async(valid()) end, "closed")
      end
    end)

    it("a <close> variable closes its client at the end of the block, errors included", function()
      -- 5.4: a real <close> variable; elsewhere its __close metamethod, called as a block's end would
      if not rt.close then assert.is_nil(rt.load(rt.CLOSING)) end
      local escaped
      local ok = pcall(rt.closing, lh.client { host = "127.0.0.1", port = srv.port }, function(c)
        escaped = c
        assert(c:put_external_event(valid()))
        error("leave the block by an error")
      end)
      assert.is_false(ok)
      assert.is_true(escaped:is_closed())
      raises(function() escaped:put_external_event(valid()) end, "closed")
    end)

    it("a client dropped without close() is collected, and its calls were complete", function()
      for _ = 1, 20 do
        local c = lh.client { host = "127.0.0.1", port = srv.port }
        assert(c:put_external_event(valid()))
      end
      collectgarbage()
      collectgarbage()
    end)
  end)

  describe("calls from inside __gc", function()
    it("a __gc metamethod posting through the client during collectgarbage() works", function()
      local posted = {}
      local function make(i)
        rt.finalizer(function()
          local ev, err = client:put_external_event(valid { wf_run_id = "from-gc-" .. i, content = i })
          posted[#posted + 1] = ev and ev.id.wf_run_id.id or tostring(err)
        end)
      end
      for i = 1, 5 do make(i) end
      collectgarbage()
      collectgarbage()
      table.sort(posted)
      assert.same({ "from-gc-1", "from-gc-2", "from-gc-3", "from-gc-4", "from-gc-5" }, posted)
    end)

    it("a __gc metamethod raising inside a call does not disturb the call", function()
      if rt.name == "5.4" then -- an error in __gc is a warning: the collection goes on
        rt.finalizer(function() error("boom from __gc") end)
        local ev = assert(client:put_external_event(valid()))
        collectgarbage()
        assert.truthy(ev.id)
      else
        -- before 5.4 the error propagates from wherever the collector ran the finalizer (it
        -- would fail the call it ran in), so the object is kept until the call is done
        local obj = rt.finalizer(function() error("boom from __gc") end)
        local ev = assert(client:put_external_event(valid()))
        obj = nil -- luacheck: ignore
        local ok, err = pcall(collectgarbage)
        assert.is_false(ok)
        assert.matches("boom from __gc", err)
        assert.truthy(ev.id)
        assert(client:put_external_event(valid()))
      end
    end)

    -- Finalizers run whenever the collector steps, i.e. at any allocation inside a call, so
    -- a call made from __gc may start while another call on the same client is converting
    -- its request or its reply. Run in a child process: a crash must fail this row, not the run.
    local function run_child(script)
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(script)
      f:close()
      local cmd = string.format("LUA_PATH=%q LUA_CPATH=%q %s %s %d %s 2>&1; echo \"EXIT $?\"",
                                package.path, package.cpath, rt.lua, path, srv.port, DEF)
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      os.remove(path)
      assert.matches("EXIT 0\n$", out, 1, false)
      return out
    end

    it("calls made from __gc while another call on the client is converting stay correct", function()
      local out = run_child [[
        local lh = require "littlehorse"
        local rt = require "runtime"
        local port, DEF = tonumber(arg[1]), arg[2]
        local client = lh.client { host = "127.0.0.1", port = port, timeout = 10 }
        local nested, nested_ok = 0, 0
        local mt = { __gc = function()
          nested = nested + 1
          local ev = client:put_external_event { wf_run_id = "gc-nested-" .. nested, external_event_def_name = DEF,
                                                 content = { a = { 1, 2, 3 }, s = string.rep("x", 3000) } }
          if ev and ev.id.wf_run_id.id == "gc-nested-" .. nested then nested_ok = nested_ok + 1 end
        end }
        rt.gc_fast()
        local bad = 0
        for i = 1, 150 do
          for _ = 1, 10 do rt.finalizer(mt.__gc) end
          local content = {}
          for j = 1, 30 do content["k" .. j] = { j, "v" .. j, { deep = j } } end
          if i % 2 == 0 then content = lh.json_obj(lh.json_encode(content)) end
          local id = { id = "outer-" .. i, parent_wf_run_id = { id = "p" .. i } }
          local ev, err = client:put_external_event { wf_run_id = id, external_event_def_name = DEF, content = content }
          local same = ev and pcall(function()
            assert(ev.id.wf_run_id.id == "outer-" .. i and ev.id.wf_run_id.parent_wf_run_id.id == "p" .. i)
            assert(ev.content.k7[2] == "v7" and ev.content.k30[3].deep == 30)
          end)
          if not same then bad = bad + 1 end
        end
        collectgarbage()
        print(string.format("RESULT bad=%d nested=%d nested_ok=%d", bad, nested, nested_ok))
        client:close()
      ]]
      local bad, nested, nested_ok = out:match("RESULT bad=(%d+) nested=(%d+) nested_ok=(%d+)")
      assert(bad, out)
      assert.equal("0", bad, out)
      assert.is_true(tonumber(nested) > 0, out)
      assert.equal(nested, nested_ok, out)
    end)

    it("close() from __gc in the middle of a call on that client: the call ends cleanly", function()
      local out = run_child [[
        local lh = require "littlehorse"
        local rt = require "runtime"
        local port, DEF = tonumber(arg[1]), arg[2]
        rt.gc_fast()
        local function new() return lh.client { host = "127.0.0.1", port = port, timeout = 10 } end
        local c = new()
        local closes, good, raised, other = 0, 0, 0, 0
        local t = {}
        for j = 1, 40 do t["k" .. j] = { j, "v" .. j } end
        local text = lh.json_encode(t)
        for i = 1, 300 do
          rt.finalizer(function() c:close() end)
          -- raw JSON text is decoded (to validate it) while the request is built: allocation
          local content = i % 2 == 0 and lh.json_obj(text) or t
          local ok, ev, err = pcall(c.put_external_event, c, { wf_run_id = "closing-" .. i,
                                                                external_event_def_name = DEF, content = content })
          if ok and ev and ev.content.k40[2] == "v40" then good = good + 1
          elseif not ok and tostring(ev):find("closed") then raised = raised + 1
          elseif ok and ev == nil and err then raised = raised + 1
          else other = other + 1; print("UNEXPECTED", ok, ev, err) end
          if c:is_closed() then closes = closes + 1; c = new() end
        end
        print(string.format("RESULT closes=%d good=%d raised=%d other=%d", closes, good, raised, other))
      ]]
      local closes, good, raised, other = out:match("RESULT closes=(%d+) good=(%d+) raised=(%d+) other=(%d+)")
      assert(closes, out)
      assert.equal("0", other, out)
      assert.is_true(tonumber(closes) > 0, out)
    end)
  end)
end)
