-- CorrelatedEvents through littlehorse.outbox, against a real dev server: a post returns the
-- key once the record is in the file; delivery sends the stored PutCorrelatedEventRequest
-- until the server has it (success, or ALREADY_EXISTS = a duplicate), through a server that is
-- down and back and through lost replies, stored exactly once; records the server refuses
-- become dead letters (kind "correlated", their key) that are listed, requeued and purged;
-- misuse raises naming the argument and field.
local lh = require "littlehorse"
local devserver = require "devserver"
local sh = require "sh"

local q = sh.q
local DEF = "paid"
local defer = require "cleanup" (function(f) finally(f) end)

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/lh-outbox-corr.XXXXXX")
  local d = p:read("*l")
  p:close()
  defer(function() os.execute("rm -rf " .. q(d)) end)
  return d
end

-- A dev server with a persistent store (so a restart keeps the defs), a client, a def that
-- takes CorrelatedEvents, and an outbox delivering with that client; all closed at the end.
local function setup(server_args, outbox_opts)
  local dir = tmpdir()
  local args = { "--store", dir .. "/server.store" }
  for _, a in ipairs(server_args or {}) do args[#args + 1] = a end
  local srv = devserver.start { args = args }
  local client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 2, config_file = false }
  local opts = { client = client, initial_backoff = 0.01, max_backoff = 0.05, poll_interval = 0.02 }
  for k, v in pairs(outbox_opts or {}) do opts[k] = v end
  local ob = assert(lh.outbox(dir .. "/outbox.db", opts))
  defer(function()
    ob:close()
    client:close()
    srv:stop()
  end)
  assert(client:put_external_event_def { name = DEF, correlated_event_config = true })
  return srv, client, ob
end

local function stored(client, key, def)
  return client:get_correlated_event { key = key, external_event_def_name = def or DEF }
end

describe("CorrelatedEvents through the outbox", function()
  it("returns the key once durable; delivered once each after the server was down, beside ExternalEvents", function()
    local srv, client, ob = setup()
    assert(client:put_external_event_def("plain"))
    srv:kill("KILL")
    local keys = {}
    for i = 1, 12 do
      local key = "order-" .. i
      local got, how = ob:post_correlated_event(key, DEF, { n = i })
      assert.same({ key, "durable" }, { got, how })
      keys[i] = key
    end
    -- the request form and the async form
    assert.same({ "order-13", "durable" }, { ob:post_correlated { key = "order-13", external_event_def_name = DEF,
                                                                  content = { n = 13 } } })
    local job, k14 = ob:post_correlated_async { key = "order-14", external_event_def_name = DEF, content = { n = 14 } }
    assert.equal("order-14", k14)
    assert.equal("order-14", job:wait(10))
    keys[13], keys[14] = "order-13", "order-14"
    local guid = assert(ob:post_event("wf-1", "plain", "an ExternalEvent"))
    local pending = assert(ob:pending())
    assert.equal(15, #pending)
    assert.same({ "correlated", "order-1", DEF }, { pending[1].kind, pending[1].key, pending[1].external_event_def_name })
    assert.same({ "event", "wf-1" }, { pending[15].kind, pending[15].wf_run_id })
    -- down: retried, nothing lost
    local counts = ob:drain(0.3)
    assert.same({ 0, 15 }, { counts.delivered, counts.pending })
    assert.is_true(counts.retries >= 1)
    assert.equal("UNAVAILABLE", assert(ob:pending())[1].last_code)
    srv:restart()
    counts = ob:drain(30)
    assert.same({ delivered = 15, duplicates = 0, dead = 0, pending = 0 },
                { delivered = counts.delivered, duplicates = counts.duplicates, dead = counts.dead,
                  pending = counts.pending })
    for i, key in ipairs(keys) do
      local ce = assert(stored(client, key))
      assert.equal(i, ce.content.n)
    end
    assert(client:get_external_event { wf_run_id = "wf-1", external_event_def_name = "plain", guid = guid })
    local server = srv:stats()
    assert.same({ 14, 1 }, { server.correlated, server.events })
    assert.equal(14, server.put_correlated - server.failed) -- each key answered OK once
    local st = assert(ob:stats())
    assert.same({ 15, 15, 0, 0 }, { st.accepted, st.delivered, st.pending, st.duplicates })
  end)

  it("counts a key the server already has as a duplicate (ALREADY_EXISTS) and keeps the server's", function()
    local srv, client, ob = setup()
    assert(client:put_correlated_event { key = "taken", external_event_def_name = DEF, content = "first" })
    assert.equal("taken", ob:post_correlated_event("taken", DEF, "second"))
    assert(ob:post_correlated_event("free", DEF, "mine"))
    local counts = ob:drain(30)
    assert.same({ 1, 1, 0, 0 }, { counts.delivered, counts.duplicates, counts.dead, counts.pending })
    assert.equal("first", assert(stored(client, "taken")).content)
    assert.equal("mine", assert(stored(client, "free")).content)
    assert.equal(2, srv:stats().correlated)
    local st = assert(ob:stats())
    assert.same({ 1, 1 }, { st.delivered, st.duplicates })
  end)

  it("lost replies (stored, then failed): 60 keys, each stored exactly once", function()
    local srv, client, ob = setup { "--store-then-fail-rate", "0.5", "--seed", "5" }
    for i = 1, 60 do assert(ob:post_correlated_event("k-" .. i, DEF, i)) end
    local counts = ob:drain(60)
    assert.equal(0, counts.pending)
    assert.equal(60, counts.delivered + counts.duplicates)
    assert.is_true(counts.duplicates > 5, "only " .. counts.duplicates .. " duplicates")
    local server = srv:stats()
    assert.equal(60, server.correlated)
    assert.equal(counts.duplicates, server.store_then_failed)
    for i = 1, 60 do assert.equal(i, assert(stored(client, "k-" .. i)).content) end
  end)

  it("turns refused records into dead letters (kind, key): listed, requeued, purged", function()
    local srv, client, ob = setup()
    assert(client:put_external_event_def { name = "typed", content_type = "INT", correlated_event_config = true })
    assert(client:put_external_event_def("not-correlated"))
    assert(ob:post_correlated_event("t-1", "typed", "not an int"))
    assert(ob:post_correlated_event("n-1", "not-correlated", 1))
    assert(ob:post_correlated_event("ok-1", "typed", 7))
    local counts = ob:drain(30)
    assert.same({ 1, 2, 0 }, { counts.delivered, counts.dead, counts.pending })
    local dead = assert(ob:dead_letters { requests = true })
    assert.equal(2, #dead)
    assert.same({ "correlated", "t-1", "typed", "INVALID_ARGUMENT", "rejected" },
                { dead[1].kind, dead[1].key, dead[1].external_event_def_name, dead[1].last_code, dead[1].reason })
    assert.same({ "correlated", "n-1", "INVALID_ARGUMENT" }, { dead[2].kind, dead[2].key, dead[2].last_code })
    assert.matches("CorrelatedEvent", dead[2].last_message)
    assert.equal("string", type(dead[1].request))
    assert.same({ 2, 2 }, { assert(ob:stats()).dead, assert(ob:stats()).dead_letters })
    -- the def takes any content now: requeued, the first is delivered with its key
    assert(client:put_external_event_def { name = "typed", correlated_event_config = true })
    assert.equal(1, ob:requeue { dead[1].id })
    counts = ob:drain(30)
    assert.same({ 1, 0, 0 }, { counts.delivered, counts.dead, counts.pending })
    assert.equal("not an int", assert(stored(client, "t-1", "typed")).content)
    assert.equal(1, ob:purge("all"))
    local st = assert(ob:stats())
    assert.same({ 0, 0 }, { st.dead_letters, st.pending })
    assert.equal(2, srv:stats().correlated)
  end)

  it("has no order: with ordered = true it neither waits for a WfRun's records nor holds them back", function()
    local _, client, ob = setup({ "--exhaust-next", "1", "--retry-after-ms", "3000" }, { ordered = true })
    local first = assert(ob:post_event("wf-o", DEF, 1))
    local counts = ob:drain(0.3) -- its first attempt is told to come back in 3 s
    assert.same({ 0, 1, 1 }, { counts.delivered, counts.retries, counts.pending })
    local second = assert(ob:post_event("wf-o", DEF, 2))
    assert(ob:post_correlated_event("c-1", DEF, 3))
    local p = assert(ob:pending())
    assert.same({ "wf-o", "wf-o" }, { p[1].order_key, p[2].order_key })
    assert.is_nil(p[3].order_key)
    counts = ob:drain(1)
    -- the CorrelatedEvent went out; the WfRun's second event waits for its first
    assert.same({ 1, 2 }, { counts.delivered, counts.pending })
    assert.equal(3, assert(stored(client, "c-1")).content)
    assert.is_nil(client:get_external_event { wf_run_id = "wf-o", external_event_def_name = DEF, guid = second })
    counts = ob:drain(30)
    assert.same({ 2, 0 }, { counts.delivered, counts.pending })
    assert(client:get_external_event { wf_run_id = "wf-o", external_event_def_name = DEF, guid = first })
  end)

  it("raises on misuse, naming the argument and field, and stores nothing", function()
    local _, _, ob = setup()
    local function raises(pattern, f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.matches("outbox_correlated_spec.lua:%d+:", err) -- the caller's line
    end
    raises("bad argument #1 to 'post_correlated_event' %(key: expected a string, got number%)",
           ob.post_correlated_event, ob, 5, DEF, 1)
    raises("bad argument #1 to 'post_correlated_event' %(key: must not contain '/' or '~'",
           ob.post_correlated_event, ob, "a/b", DEF, 1)
    raises("bad argument #1 to 'post_correlated_event' %(key: required", ob.post_correlated_event, ob, nil, DEF, 1)
    raises("bad argument #2 to 'post_correlated_event' %(external_event_def_name: required",
           ob.post_correlated_event, ob, "k", nil, 1)
    raises("bad argument #4 to 'post_correlated_event' %(guid: unknown option", ob.post_correlated_event, ob, "k",
           DEF, 1, { guid = "g" })
    raises("bad argument #4 to 'post_correlated_event' %(table of options expected, got string%)",
           ob.post_correlated_event, ob, "k", DEF, 1, "x")
    raises("bad argument #1 to 'post_correlated' %(wf_run_id: unknown field", ob.post_correlated, ob,
           { key = "k", external_event_def_name = DEF, wf_run_id = "w" })
    raises("bad argument #1 to 'post_correlated' %(content%.x: ", ob.post_correlated, ob,
           { key = "k", external_event_def_name = DEF, content = { x = function() end } })
    raises("bad argument #2 to 'post_correlated_async' %(on_done: expected a function%)",
           ob.post_correlated_async, ob, { key = "k", external_event_def_name = DEF }, { on_done = 1 })
    raises("bad argument #1 to 'post_correlated' %(littlehorse.outbox expected", ob.post_correlated,
           { key = "k" })
    assert.equal(0, assert(ob:stats()).accepted)
  end)
end)
