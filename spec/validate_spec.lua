-- The `validate` option (per client or per call): content checked against its def's type
-- before a put is sent, failing with the path of what is wrong and nothing sent; the def
-- fetched once per ttl; the client's own def changes forgetting it; and the local check agreeing
-- with the server's on accept / refuse for both put RPCs. Also core.check_content itself.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"

local defer = require "cleanup" (function(f) finally(f) end)

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  assert.truthy(tostring(err):find(text, 1, true), tostring(err))
end

local function start(opts)
  local srv = devserver.start(opts)
  defer(function() srv:stop() end)
  return srv
end

local function client_for(srv, opts)
  local o = { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = lh.client(o)
  defer(function() c:close() end)
  return c
end

local function refused_locally(ev, err, code)
  assert.is_nil(ev)
  assert.equal("INVALID_ARGUMENT", code)
  assert.is_false(err.sent)
  return err
end

describe("validate", function()
  it("refuses content of the wrong type before sending, naming where it is wrong", function()
    local srv = start {}
    local client = client_for(srv, { validate = true })
    assert(client:put_external_event_def { name = "nums", content_type = { type = "ARRAY", array_type = "INT" },
                                           correlated_event_config = true })
    local before = srv:stats()
    local err = refused_locally(client:put_external_event { wf_run_id = "w", external_event_def_name = "nums",
                                                            content = lh.array { 1, 2, "three" } })
    assert.equal("content[3]", err.path)
    assert.equal("PutExternalEvent", err.method)
    assert.equal("content[3]: Array element type STR incompatible with expected element type INT (content checked " ..
                 "by the client against ExternalEventDef nums)", err.message)
    err = refused_locally(client:post_event("w", "nums", "not an array"))
    assert.equal("content", err.path)
    assert.matches("Value of type STR is not compatible with expected type Array<INT>", err.message)
    err = refused_locally(client:post_correlated_event("k", "nums", lh.array { 1.5 }))
    assert.equal("content", err.path) -- PutCorrelatedEvent compares the array's own type
    assert.matches("Value of type Array<DOUBLE> is not compatible with expected type Array<INT>", err.message)
    assert.equal("PutCorrelatedEvent", err.method)
    refused_locally(client:put_correlated_event({ key = "k", external_event_def_name = "nums", content = lh.array { "x" } },
                                                { retry = true }))
    local after = srv:stats()
    assert.equal(before.put_event, after.put_event)
    assert.equal(before.put_correlated, after.put_correlated)
    assert.equal(before.get_def + 1, after.get_def) -- the def was fetched once
    -- content that fits goes out
    assert(client:put_external_event { wf_run_id = "w", external_event_def_name = "nums", content = lh.array { 1, 2 } })
    assert(client:post_correlated_event("k", "nums", lh.array { 1, 2 }))
    assert(client:post_event("w", "nums", nil)) -- NULL always fits
  end)

  it("is per call too: validate = true on any client, validate = false on a validating one", function()
    local srv = start {}
    local plain = client_for(srv)
    local checking = client_for(srv, { validate = { ttl = 60 } })
    assert(plain:put_external_event_def { name = "count", content_type = "INT" })
    refused_locally(plain:put_external_event({ wf_run_id = "w", external_event_def_name = "count", content = "x" },
                                              { validate = true }))
    local ev, err, code = checking:put_external_event({ wf_run_id = "w", external_event_def_name = "count", content = "x" },
                                                      { validate = false })
    assert.is_nil(ev)
    assert.equal("INVALID_ARGUMENT", code)
    assert.is_nil(err.sent) -- the server's answer
    assert.matches("Check the return type of ExternalEventDef count", err.message)
    ev, err = plain:post_event("w", "count", "x", { validate = true })
    refused_locally(ev, err, err.code)
    raises(function() plain:put_external_event({ wf_run_id = "w", external_event_def_name = "count" }, { validate = "yes" }) end,
           "bad argument #2 to 'put_external_event' (validate: expected a boolean, got string)")
    raises(function() plain:put_external_event_async({ wf_run_id = "w", external_event_def_name = "count" }, { validate = true }) end,
           "bad argument #2 to 'put_external_event_async' (validate: an async call does not validate")
    raises(function() plain:put_correlated_event_async({ key = "k", external_event_def_name = "count" }, { validate = false }) end,
           "bad argument #2 to 'put_correlated_event_async' (validate: an async call does not validate (the blocking "
           .. "put_correlated_event does))")
    raises(function() plain:put_external_event_packed_async("", { validate = true }) end,
           "bad argument #2 to 'put_external_event_packed_async' (validate: unknown call option")
    raises(function() plain:get_external_event({ wf_run_id = "w", external_event_def_name = "count", guid = "g" }, { validate = true }) end,
           "(validate: unknown call option")
    raises(function() lh.client { port = srv.port, validate = "always" } end,
           "bad argument #1 to 'client' (validate: expected true, false or { ttl = seconds }, got string)")
    raises(function() lh.client { port = srv.port, validate = { tll = 5 } } end,
           "bad argument #1 to 'client' (tll: unknown validate option (did you mean ttl?))")
  end)

  it("keeps a def for ttl seconds, and forgets one this client puts or deletes", function()
    local srv = start {}
    local client = client_for(srv, { validate = { ttl = 0.3 } })
    local other = client_for(srv)
    assert(other:put_external_event_def { name = "t", content_type = "INT" })
    local req = { wf_run_id = "w", external_event_def_name = "t", content = "text" }
    refused_locally(client:put_external_event(req))
    local fetched = srv:stats().get_def
    -- another client changes the def: this one goes on with the type it has, until the ttl is up
    assert(other:put_external_event_def { name = "t", content_type = "STR" })
    local t0 = core.now()
    local ev, err = client:put_external_event(req)
    if core.now() - t0 < 0.3 then
      assert.is_nil(ev)
      assert.is_false(err.sent)
    end
    local deadline = core.now() + 10
    repeat
      ev, err = client:put_external_event(req)
      if not ev then core.sleep(0.05) end
    until ev or core.now() > deadline
    assert.is_table(ev, tostring(err))
    assert.equal(fetched + 1, srv:stats().get_def)
    -- this client's own put replaces its cached def at once
    assert(client:put_external_event_def { name = "t", content_type = "BOOL" })
    refused_locally(client:put_external_event(req))
    assert(client:delete_external_event_def "t")
    -- no def: nothing to check against; the server answers
    local gone, err2 = client:put_external_event(req)
    assert.is_nil(gone)
    assert.is_nil(err2.sent)
    assert.matches("No ExternalEventDef named t", err2.message)
  end)

  it("checks correlated puts for a correlated_event_config and VOID types", function()
    local srv = start { defs = { "plain" } }
    local client = client_for(srv, { validate = true })
    local err = refused_locally(client:post_correlated_event("k", "plain", 1))
    assert.equal("ExternalEventDef plain does not have CorrelatedEvents enabled (no correlated_event_config; " ..
                 "checked by the client)", err.message)
    assert(client:put_external_event_def { name = "void", content_type = "VOID", correlated_event_config = true })
    err = refused_locally(client:post_correlated_event("k", "void", 1))
    assert.matches("Expected void return type, but value is not empty.", err.message, 1, true)
    assert(client:post_correlated_event("k", "void", nil))
    assert(client:post_event("w", "void", 1)) -- PutExternalEvent checks nothing for VOID
    assert.equal(1, srv:stats().put_correlated) -- only the NULL one was sent
  end)

  it("agrees with the server on what fits, for both put RPCs", function()
    local srv = start {}
    local checking = client_for(srv, { validate = true })
    local plain = client_for(srv)
    local types = {
      INT = "INT", DOUBLE = "DOUBLE", STR = "STR", BOOL = "BOOL", BYTES = "BYTES", TS = "TIMESTAMP", OBJ = "JSON_OBJ",
      ARR = "JSON_ARR", WF = "WF_RUN_ID",
      AINT = { type = "ARRAY", array_type = "INT" }, ADBL = { type = "ARRAY", array_type = "DOUBLE" },
      MSI = { type = "MAP", key_type = "STR", value_type = "INT" },
      SORD = { type = "STRUCT", name = "order", version = 1 }, MSTR = { type = "STR", masked = true },
    }
    local contents = {
      1, 2.5, "s", true, lh.bytes("b"), lh.timestamp(0), { a = 1 }, { 1, 2 }, lh.wf_run_id("p_c"),
      lh.array { 1, 2 }, lh.array { 1.5 }, lh.array { "x" }, lh.array {}, lh.array { lh.array { 1 } },
      lh.map { { "a", 1 } }, lh.map { { 1, 1 } }, lh.map { { "a", "b" } }, lh.map {},
      lh.struct("order", 1, { x = 1 }), lh.struct("other", 1, {}), lh.int(3), lh.double(3), lh.str("7"),
    }
    local checked = 0
    for name, t in pairs(types) do
      local def = "v-" .. name:lower()
      assert(plain:put_external_event_def { name = def, content_type = t, correlated_event_config = true })
      for i, content in ipairs(contents) do
        local where = name .. " / content #" .. i
        -- PutExternalEvent
        local server_ev = plain:put_external_event { wf_run_id = "w", external_event_def_name = def, content = content }
        local local_ev, lerr = checking:put_external_event { wf_run_id = "w", external_event_def_name = def, content = content }
        assert.equal(server_ev ~= nil, local_ev ~= nil or (lerr and lerr.sent ~= false), where .. " (PutExternalEvent)")
        if not local_ev then assert.is_false(lerr.sent, where .. ": refused by the server, not locally") end
        -- PutCorrelatedEvent (a fresh key each time)
        local key = name .. "-" .. i
        local server_ce = plain:put_correlated_event { key = key .. "-s", external_event_def_name = def, content = content }
        local local_ce, cerr = checking:put_correlated_event { key = key .. "-l", external_event_def_name = def, content = content }
        assert.equal(server_ce ~= nil, local_ce ~= nil, where .. " (PutCorrelatedEvent)")
        if not local_ce then assert.is_false(cerr.sent, where .. ": refused by the server, not locally") end
        checked = checked + 2
      end
    end
    assert.equal(2 * 14 * #contents, checked)
  end)

  it("lets the put report its own misuse (content that cannot be converted)", function()
    local srv = start {}
    local client = client_for(srv, { validate = true })
    assert(client:put_external_event_def { name = "count", content_type = "INT" })
    raises(function() client:put_external_event { wf_run_id = "w", external_event_def_name = "count", content = { f = print } } end,
           "bad argument #1 to 'put_external_event' (content.f: cannot encode a function as JSON)")
    raises(function() client:post_event("w", "count", { f = print }) end,
           "bad argument #3 to 'post_event' (content.f: cannot encode a function as JSON)")
  end)
end)

describe("core.check_content", function()
  it("answers true, or false with the server's text and the path", function()
    assert.is_true(core.check_content("INT", 5))
    assert.is_true(core.check_content("DOUBLE", 5))
    assert.is_true(core.check_content("STR", true))
    assert.is_true(core.check_content("INT", nil))
    assert.is_true(core.check_content("VOID", 5))
    assert.same({ false, "Expected void return type, but value is not empty.", "content" },
                { core.check_content("VOID", 5, "PutCorrelatedEvent") })
    assert.same({ false, "Value of type BOOL is not compatible with expected type INT", "content" },
                { core.check_content("INT", false) })
    assert.same({ false, "Value of type STR is not compatible with expected type INT", "content" },
                { core.check_content("INT", "a\0b") }) -- a str with NUL bytes is still a STR
    assert.same({ false, "Map value type STR incompatible with expected value type INT", "content[2][2]" },
                { core.check_content({ type = "MAP", key_type = "STR", value_type = "INT" },
                                     lh.map { { "a", 1 }, { "b", "x" } }) })
    assert.same({ false, "Map key type STR incompatible with expected key type INT", "content[1][1]" },
                { core.check_content({ type = "MAP", key_type = "INT", value_type = "INT" }, lh.map { { "a", 1 } }) })
    assert.is_true(core.check_content({ type = "MAP", key_type = "STR", value_type = "INT" }, lh.map { { 1, 1 } }))
    assert.same({ false, "Value of type Struct<other,v0> is not compatible with expected type Struct<order,v1>", "content" },
                { core.check_content({ type = "STRUCT", name = "order", version = 1 }, lh.struct("other", 0, {})) })
    assert.same({ false, "Value of type STR is not compatible with expected type INT MASKED", "content" },
                { core.check_content({ type = "INT", masked = true }, "x") })
    raises(function() core.check_content("INTEGER", 1) end, "bad argument #1 to 'check_content' (unknown type 'INTEGER'")
    raises(function() core.check_content("INT", print) end,
           "bad argument #2 to 'check_content' (content: cannot convert a function to a VariableValue)")
    raises(function() core.check_content("INT", 1, "PutEvent") end, "invalid option 'PutEvent'")
  end)
end)
