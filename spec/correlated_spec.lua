-- CorrelatedEvents through the client, against the dev server: put / get / delete (blocking
-- and async), correlation with WfRuns that wait on the key (the dev server's test hook),
-- delete_after_first_correlation and ttl_seconds, the server's refusals, misuse, and
-- post_correlated_event: retries keyed by the correlation key (exactly once under faults), the
-- duplicate and deleted answers, and the trap of delete_after_first_correlation.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local devhook = require "devhook"

local defer = require "cleanup" (function(f) finally(f) end)

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  assert.is_string(err)
  assert.truthy(err:find(text, 1, true), err)
  return err
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

local function wait_for(pred, limit)
  local t0 = core.now()
  while core.now() - t0 < (limit or 10) do
    if pred() then return true end
    core.sleep(0.02)
  end
  return pred()
end

-- A def with CorrelatedEvents enabled (config: the correlated_event_config).
local function correlated_def(client, name, config)
  return assert(client:put_external_event_def { name = name, correlated_event_config = config or true })
end

local function waiting(srv, key, def, wf, thread, position)
  local r = devhook.start_waiting(srv.target, { key = key, def = def, wf_run_id = wf, thread = thread, position = position })
  assert.equal("OK", r.code, r.message)
  return r.ids
end

describe("put_correlated_event / get_correlated_event / delete_correlated_event", function()
  it("puts, reads and deletes a CorrelatedEvent", function()
    local srv = start {}
    local client = client_for(srv)
    correlated_def(client, "paid")
    local ce = assert(client:put_correlated_event { key = "order-17", external_event_def_name = "paid",
                                                    content = { amount = 42 } })
    assert.same({ key = "order-17", external_event_def_id = { name = "paid" } }, ce.id)
    assert.same({ amount = 42 }, ce.content)
    assert.equal("JSON_OBJ", ce.content_type)
    assert.equal(core.timestamp_mt, getmetatable(ce.created_at))
    assert.same({}, ce.external_events)
    assert.same(ce, assert(client:get_correlated_event(ce.id))) -- a reply's id works as it is
    assert.same(ce, assert(client:get_correlated_event { key = "order-17", external_event_def_id = { name = "paid" } }))
    assert.is_true(assert(client:delete_correlated_event(ce.id)))
    local none, err, code = client:get_correlated_event(ce.id)
    assert.is_nil(none)
    assert.equal("NOT_FOUND", code)
    assert.equal("GetCorrelatedEvent", err.method)
    assert.is_true(assert(client:delete_correlated_event { key = "order-17", external_event_def_name = "paid" }))
    -- NULL content, and content of every shape comes back as sent
    local null = assert(client:put_correlated_event { key = "null", external_event_def_name = "paid" })
    assert.is_nil(null.content)
    assert.is_nil(null.content_type)
    for i, v in ipairs { 7, 2.5, "text\0with NUL", true, lh.bytes("\0\1\2"), lh.array { 1, "a" },
                         lh.timestamp("2024-05-01T12:00:00Z"), lh.wf_run_id("p_c") } do
      local got = assert(client:put_correlated_event { key = "k" .. i, external_event_def_name = "paid", content = v })
      local back = assert(client:get_correlated_event(got.id))
      assert.same(got, back)
      if type(v) ~= "table" then assert.equal(v, back.content) end
    end
  end)

  it("answers the server's refusals as nil, err, code", function()
    local srv = start { defs = { "plain" } }
    local client = client_for(srv)
    correlated_def(client, "paid")
    assert(client:put_external_event_def { name = "typed", content_type = "INT", correlated_event_config = true })
    assert(client:put_correlated_event { key = "k", external_event_def_name = "paid" })
    local function refused(req, code, text)
      local ce, err, c = client:put_correlated_event(req)
      assert.is_nil(ce)
      assert.equal(code, c)
      assert.equal("PutCorrelatedEvent", err.method)
      assert.truthy(err.message:find(text, 1, true), err.message)
    end
    refused({ key = "k", external_event_def_name = "paid" }, "ALREADY_EXISTS", "Correlated Event with key k already exists!")
    refused({ key = "k", external_event_def_name = "plain" }, "INVALID_ARGUMENT", "does not have CorrelatedEvent enabled")
    refused({ key = "k", external_event_def_name = "nope" }, "INVALID_ARGUMENT", "Could not find specified ExternalEventDef")
    refused({ key = "k2", external_event_def_name = "typed", content = "seven" }, "INVALID_ARGUMENT",
            "Invalid type of content for event: typed: Value of type STR is not compatible with expected type INT")
    assert(client:put_correlated_event { key = "k2", external_event_def_name = "typed", content = 7 })
  end)

  it("correlates with WfRuns that wait on the key, in either order", function()
    local srv = start {}
    local client = client_for(srv)
    correlated_def(client, "paid")
    waiting(srv, "order-1", "paid", "wf-1", 2, 6)
    local ce = assert(client:put_correlated_event { key = "order-1", external_event_def_name = "paid", content = "ok" })
    assert.equal(1, #ce.external_events)
    local id = ce.external_events[1]
    assert.same({ id = "wf-1" }, id.wf_run_id)
    assert.same({ name = "paid" }, id.external_event_def_id)
    assert.matches("^%x+$", id.guid)
    local ev = assert(client:get_external_event(id))
    assert.same({ true, 2, 6, "ok" }, { ev.claimed, ev.thread_run_number, ev.node_run_position, ev.content })
    -- a WfRun that starts waiting later finds the CorrelatedEvent at once
    local ids = waiting(srv, "order-1", "paid", "wf-2")
    assert.equal(1, #ids)
    local now = assert(client:get_correlated_event(ce.id))
    assert.equal(2, #now.external_events)
    assert.same({ id = "wf-2" }, now.external_events[2].wf_run_id)
    assert.equal("ok", assert(client:get_external_event(now.external_events[2])).content)
  end)

  it("deletes the CorrelatedEvent after its first correlation, or when its ttl_seconds are up", function()
    local srv = start {}
    local client = client_for(srv)
    correlated_def(client, "once", { delete_after_first_correlation = true })
    waiting(srv, "k", "once", "wf-1")
    local ce = assert(client:put_correlated_event { key = "k", external_event_def_name = "once", content = 1 })
    assert.equal(1, #ce.external_events) -- the reply still shows it with its event
    assert.equal("NOT_FOUND", select(3, client:get_correlated_event(ce.id)))
    correlated_def(client, "brief", { ttl_seconds = 1 })
    local b = assert(client:put_correlated_event { key = "k", external_event_def_name = "brief" })
    assert(client:get_correlated_event(b.id))
    assert.is_true(wait_for(function() return select(3, client:get_correlated_event(b.id)) == "NOT_FOUND" end, 10))
    assert(client:put_correlated_event { key = "k", external_event_def_name = "brief" }) -- the key is free again
  end)

  it("has async forms (wait, on_done), and a client with a token sends it", function()
    local srv = start { args = { "--require-token", "s3cr3t" } }
    local client = client_for(srv, { token = "s3cr3t" })
    correlated_def(client, "paid")
    local h = client:put_correlated_event_async { key = "a", external_event_def_name = "paid", content = 1 }
    local ce = assert(h:wait())
    assert.equal("a", ce.id.key)
    local got, deleted
    client:get_correlated_event_async(ce.id, { on_done = function(x) got = x end })
    while client:in_flight() > 0 do client:poll(0.05) end
    assert.same(ce, got)
    client:delete_correlated_event_async(ce.id, { on_done = function(x) deleted = x end })
    while client:in_flight() > 0 do client:poll(0.05) end
    assert.is_true(deleted)
    assert.equal("NOT_FOUND", select(3, client:get_correlated_event_async(ce.id):wait()))
    local untokened = client_for(srv)
    assert.equal("UNAUTHENTICATED", select(3, untokened:get_correlated_event(ce.id)))
  end)

  it("raises for misuse, naming the field; nothing is sent", function()
    local srv = start { defs = { "d" } }
    local client = client_for(srv)
    local before = srv:stats().calls
    raises(function() client:put_correlated_event { key = "a/b", external_event_def_name = "d" } end,
           "bad argument #1 to 'put_correlated_event' (key: must not contain '/' or '~' (the server refuses them in keys))")
    raises(function() client:put_correlated_event { key = "a~b", external_event_def_name = "d" } end, "(key: must not contain '/' or '~'")
    raises(function() client:put_correlated_event { key = "", external_event_def_name = "d" } end, "(key: must not be empty)")
    raises(function() client:put_correlated_event { key = "a\0b", external_event_def_name = "d" } end, "(key: contains a NUL byte")
    raises(function() client:put_correlated_event { external_event_def_name = "d" } end, "(key: required")
    raises(function() client:put_correlated_event { key = "k" } end, "(external_event_def_name: required")
    raises(function() client:put_correlated_event { key = "k", external_event_def_name = "d", external_event_def_id = { name = "d" } } end,
           "give external_event_def_name or external_event_def_id, not both")
    raises(function() client:put_correlated_event { key = "k", external_event_def_name = "d", contnet = 1 } end,
           "(contnet: unknown field of a PutCorrelatedEvent request (did you mean content?))")
    raises(function() client:put_correlated_event { key = "k", external_event_def_name = "d", content = { f = print } } end,
           "(content.f: cannot encode a function as JSON)")
    raises(function() client:get_correlated_event { key = "k", external_event_def_name = "d", content = 1 } end,
           "bad argument #1 to 'get_correlated_event' (content: unknown field of a CorrelatedEventId)")
    raises(function() client:delete_correlated_event_async { key = 5, external_event_def_name = "d" } end,
           "bad argument #1 to 'delete_correlated_event_async' (key: expected a string, got number)")
    raises(function() client:put_correlated_event("k") end,
           "bad argument #1 to 'put_correlated_event' (expected a PutCorrelatedEvent request table, got string)")
    raises(function() client:put_correlated_event_async({ key = "k", external_event_def_name = "d" }, { retry = true }) end,
           "(retry: an async call does not retry: the littlehorse client's blocking puts and posts " ..
           "(put_external_event, post_event, put_correlated_event, post_correlated_event) do)")
    assert.equal(before, srv:stats().calls)
  end)
end)

describe("post_correlated_event", function()
  it("posts once, and answers a repeated key with the stored CorrelatedEvent (duplicate)", function()
    local srv = start {}
    local client = client_for(srv)
    correlated_def(client, "paid")
    local ce, info = client:post_correlated_event("order-5", "paid", { n = 1 })
    assert.is_table(ce, tostring(info))
    assert.same({ attempts = 1, duplicate = false, key = "order-5" }, info)
    local again, info2 = client:post_correlated_event("order-5", "paid", { n = 2 })
    assert.same({ attempts = 1, duplicate = true, key = "order-5" }, info2)
    assert.same(ce, again) -- the stored one (n = 1), not what this call sent
    local t, info3 = client:post_correlated_event("order-5", "paid", 3, { reply = false })
    assert.is_true(t)
    assert.is_true(info3.duplicate)
    local one, err, code = client:post_correlated_event("order-5", "paid", 4, { retry = false })
    assert.is_nil(one)
    assert.equal("ALREADY_EXISTS", code)
    assert.equal("PutCorrelatedEvent", err.method)
  end)

  it("retries UNAVAILABLE with the same key and stores exactly once when replies are lost", function()
    local srv = start { args = { "--fail-next", "2", "--store-then-fail", "100000" } }
    local client = client_for(srv)
    correlated_def(client, "paid")
    local retried = 0
    local ce, info = client:post_correlated_event("k0", "paid", 0, {
      retry = { initial_backoff = 0.001, max_backoff = 0.01, on_retry = function() retried = retried + 1 end } })
    assert.is_table(ce, tostring(info))
    -- two failures before anything was stored, then stored with the reply lost, then ALREADY_EXISTS
    assert.same({ attempts = 4, duplicate = true, key = "k0" }, info)
    assert.equal(3, retried)
    for i = 1, 100 do
      local c, inf = client:post_correlated_event("k" .. i, "paid", i, { retry = { initial_backoff = 0.001, max_backoff = 0.005 } })
      assert.is_table(c, tostring(inf))
      assert.is_true(inf.duplicate)
      assert.equal(i, c.content)
    end
    local n = 0
    for _ in client:correlated_event_ids { def = "paid", page_size = 40 } do n = n + 1 end
    assert.equal(101, n)
    assert.equal(101, srv:stats().correlated)
  end)

  it("returns true with info.deleted when the stored one is gone before it is read back", function()
    local srv = start { args = { "--require-token", "t", "--store-then-fail", "1" } }
    local other = client_for(srv, { token = "t" })
    correlated_def(other, "paid")
    -- The token function runs before each call: the first put (stored, reply lost), the second
    -- put (ALREADY_EXISTS), then the read back; just before that one, another client deletes it.
    local calls = 0
    local client = client_for(srv, { token = function()
      calls = calls + 1
      if calls == 3 then assert(other:delete_correlated_event { key = "gone", external_event_def_name = "paid" }) end
      return "t"
    end })
    local ce, info = client:post_correlated_event("gone", "paid", 1, { retry = { initial_backoff = 0.001 } })
    assert.is_true(ce, tostring(info))
    assert.same({ attempts = 2, duplicate = true, deleted = true, key = "gone" }, info)
  end)

  it("the trap: with delete_after_first_correlation, a retry after the deletion makes a second one", function()
    local srv = start { args = { "--store-then-fail", "1" } }
    local client = client_for(srv)
    correlated_def(client, "once", { delete_after_first_correlation = true })
    waiting(srv, "order-9", "once", "wf-1")
    -- attempt 1: stored, correlated with wf-1 and deleted; its reply is lost. Meanwhile wf-2
    -- starts waiting on the key. Attempt 2 finds the key free: a new CorrelatedEvent, which
    -- wf-2 receives. The event went out twice.
    local ce, info = client:post_correlated_event("order-9", "once", "paid", { retry = {
      initial_backoff = 0.001, on_retry = function() assert.same({}, waiting(srv, "order-9", "once", "wf-2")) end } })
    assert.is_table(ce, tostring(info))
    assert.same({ attempts = 2, duplicate = false, key = "order-9" }, info)
    assert.equal(1, #ce.external_events)
    assert.same({ id = "wf-2" }, ce.external_events[1].wf_run_id)
    local delivered = {}
    for _, wf in ipairs { "wf-1", "wf-2" } do
      for ev in client:external_events(wf) do delivered[#delivered + 1] = wf .. ":" .. ev.content end
    end
    assert.same({ "wf-1:paid", "wf-2:paid" }, delivered)
  end)

  it("raises for misuse, naming post_correlated_event's argument", function()
    local srv = start {}
    local client = client_for(srv)
    raises(function() client:post_correlated_event("a/b", "d", 1) end,
           "bad argument #1 to 'post_correlated_event' (key: must not contain '/' or '~'")
    raises(function() client:post_correlated_event(nil, "d", 1) end, "bad argument #1 to 'post_correlated_event' (key: required")
    raises(function() client:post_correlated_event("k", 5, 1) end,
           "bad argument #2 to 'post_correlated_event' (external_event_def_name: expected a string, got number)")
    raises(function() client:post_correlated_event("k", "d", { f = print }) end,
           "bad argument #3 to 'post_correlated_event' (content.f: cannot encode a function as JSON)")
    raises(function() client:post_correlated_event("k", "d", 1, { gid = "x" }) end,
           "bad argument #4 to 'post_correlated_event' (gid: unknown option (expected timeout, metadata, reply, retry or validate))")
    raises(function() client:post_correlated_event("k", "d", 1, { retry = { attemps = 2 } }) end,
           "bad retry option attemps: unknown option (did you mean attempts?)")
    raises(function() client:post_correlated_event("k", "d", 1, "fast") end,
           "bad argument #4 to 'post_correlated_event' (table of options expected, got string)")
    assert.equal(0, srv:stats().put_correlated)
  end)
end)
