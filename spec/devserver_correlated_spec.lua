-- The dev server's CorrelatedEvents against the real server's semantics
-- (shared/docs/littlehorse-protocol.md section 8), driven by the official JS SDK 0.14.0
-- (spec/support/lhjs.lua) and, for what 0.14.0 lacks (DeleteCorrelatedEvent, the DevServer
-- hooks), by hand-written request bytes. WfRuns "wait" on a key through the dev server's
-- DevServer.StartWaiting hook (docs/devserver.md, "Test hooks").
local devserver = require "devserver"
local devhook = require "devhook"
local lhjs = require "lhjs"
local m = require "lhmsg"

local defer = require "cleanup" (function(f) finally(f) end)

local function start(opts)
  local srv = devserver.start(opts)
  defer(function() srv:stop() end)
  return srv
end

local function def_step(name, config, content_type)
  return { sdk = "putExternalEventDef", req = { name = name, correlatedEventConfig = config, contentType = content_type } }
end

local function put_step(key, def, content)
  return { sdk = "putCorrelatedEvent", req = { key = key, externalEventDefId = { name = def }, content = content } }
end

local function get_step(key, def)
  return { sdk = "getCorrelatedEvent", req = { key = key, externalEventDefId = { name = def } } }
end

local function get_event_step(id)
  return { sdk = "getExternalEvent", req = id }
end

-- A WfRun's node starts / stops waiting: raw steps (the DevServer service is the dev server's own).
local function wait_step(key, def, wf, thread, position)
  return lhjs.raw(devhook.START, devhook.waiting_node_run { key = key, def = def, wf_run_id = wf, thread = thread,
                                                              position = position }, "ExternalEventIdList")
end

local function stop_step(key, def, wf, thread, position)
  return lhjs.raw(devhook.STOP, devhook.waiting_node_run { key = key, def = def, wf_run_id = wf, thread = thread,
                                                             position = position }, "Empty")
end

local function ok(r, what)
  assert(r.code == "OK", (what or "call") .. ": " .. tostring(r.code) .. " " .. tostring(r.message))
  return r
end

local function ids_of(list_result) -- raw ExternalEventIdList -> { {wf =, def =, guid =} }
  local out = {}
  for i, id in ipairs(list_result.raw.results or {}) do
    out[i] = { wf = id.wf_run_id.id.utf8, def = id.external_event_def_id.name.utf8, guid = id.guid.utf8 }
  end
  return out
end

describe("dev server: PutCorrelatedEvent / GetCorrelatedEvent / DeleteCorrelatedEvent", function()
  it("stores a CorrelatedEvent, returns it from Get, refuses the same key twice per def", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("paid", { deleteAfterFirstCorrelation = false }),
      def_step("shipped", {}),
      put_step("order-1", "paid", { str = "hello" }),
      get_step("order-1", "paid"),
      put_step("order-1", "paid", { str = "again" }),
      put_step("order-1", "shipped", { int = 7 }), -- same key, other def: another CorrelatedEvent
      get_step("order-1", "shipped"),
      get_step("order-2", "paid"),
    })
    local put, got = ok(r[3], "put").reply, ok(r[4], "get").reply
    assert.same({ key = "order-1", externalEventDefId = { name = "paid" } }, put.id)
    assert.same({ str = "hello" }, put.content)
    assert.same({}, put.externalEvents)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", put.createdAt)
    assert.same(put, got)
    assert.equal("ALREADY_EXISTS", r[5].code)
    assert.equal("Correlated Event with key order-1 already exists!", r[5].message)
    assert.same({ int = 7 }, ok(r[6]).reply.content)
    assert.same({ int = 7 }, ok(r[7]).reply.content)
    assert.equal("NOT_FOUND", r[8].code)
    assert.equal("Requested object was not found.", r[8].message)
  end)

  it("refuses what the real server refuses, with its codes and messages", function()
    local srv = start { defs = { "plain" } }
    local r = lhjs.run(srv.target, {
      put_step("k", "plain", { str = "x" }), -- a def without correlated_event_config
      put_step("k", "missing", { str = "x" }),
      def_step("corr", {}),
      put_step("a/b", "corr", { str = "x" }),
      put_step("a~b", "corr", { str = "x" }),
      put_step("", "corr", { str = "an empty key is a key" }),
    })
    assert.equal("INVALID_ARGUMENT", r[1].code)
    assert.equal("Specified ExternalEventDef does not have CorrelatedEvent enabled", r[1].message)
    assert.equal("INVALID_ARGUMENT", r[2].code)
    assert.equal("Could not find specified ExternalEventDef", r[2].message)
    ok(r[3])
    for i = 4, 5 do
      assert.equal("INVALID_ARGUMENT", r[i].code)
      assert.equal("CorrelatedEvent keys cannot contain '/' or '~'", r[i].message)
    end
    ok(r[6], "empty key")
  end)

  it("DeleteCorrelatedEvent deletes; deleting what is not there is not an error (0.14.0 lacks it: raw)", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("d", {}),
      put_step("k", "d", { bool = true }),
      lhjs.raw(m.PATH.DeleteCorrelatedEvent, m.delete_correlated("k", "d"), "Empty"),
      get_step("k", "d"),
      lhjs.raw(m.PATH.DeleteCorrelatedEvent, m.delete_correlated("k", "d"), "Empty"),
      put_step("k", "d", { bool = false }), -- the key is free again
    })
    ok(r[2])
    assert.equal("", ok(r[3]).reply_hex) -- google.protobuf.Empty
    assert.equal("NOT_FOUND", r[4].code)
    assert.equal("", ok(r[5], "second delete").reply_hex)
    assert.same({ bool = false }, ok(r[6]).reply.content)
  end)
end)

describe("dev server: correlation with waiting WfRuns", function()
  it("a WfRun waits first: the put makes its ExternalEvent (random guid, claimed, the node's thread and position)", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("paid", {}),
      wait_step("order-9", "paid", "wf-a", 2, 5),
      wait_step("order-9", "paid", "wf-b", 0, 3),
      wait_step("order-9", "paid", "wf-b", 0, 3), -- waiting twice is waiting once
      wait_step("other-key", "paid", "wf-c"),
      put_step("order-9", "paid", { str = "payload" }),
    })
    for i = 2, 5 do assert.same({}, ids_of(ok(r[i], "wait " .. i))) end -- nothing to correlate yet
    local ce = ok(r[6]).reply
    assert.equal(2, #ce.externalEvents)
    local seen = {}
    for _, id in ipairs(ce.externalEvents) do
      assert.equal("paid", id.externalEventDefId.name)
      assert.matches("^%x+$", id.guid)
      assert.equal(32, #id.guid)
      seen[id.wfRunId.id] = id
    end
    assert.truthy(seen["wf-a"] and seen["wf-b"])
    assert.not_equal(seen["wf-a"].guid, seen["wf-b"].guid)
    -- the ExternalEvents exist, as the waiting nodes took them
    local r2 = lhjs.run(srv.target, {
      get_event_step(seen["wf-a"]), get_event_step(seen["wf-b"]), get_step("order-9", "paid"),
      -- the waiting list was cleared: a second CorrelatedEvent with the key finds no one
      lhjs.raw(m.PATH.DeleteCorrelatedEvent, m.delete_correlated("order-9", "paid"), "Empty"),
      put_step("order-9", "paid", { str = "second" }),
    })
    local a, b = ok(r2[1]).reply, ok(r2[2]).reply
    assert.same({ str = "payload" }, a.content)
    assert.is_true(a.claimed)
    assert.equal(2, a.threadRunNumber)
    assert.equal(5, a.nodeRunPosition)
    assert.is_true(b.claimed)
    assert.equal(0, b.threadRunNumber) -- written although 0 (explicit presence)
    assert.equal(3, b.nodeRunPosition)
    assert.same(ce.externalEvents, ok(r2[3]).reply.externalEvents) -- kept: no delete_after_first_correlation
    ok(r2[4])
    assert.same({}, ok(r2[5]).reply.externalEvents)
    local st = srv:stats()
    assert.equal(2, st.events)
    assert.equal(1, st.correlated)
    assert.equal(1, st.waiting) -- "other-key" still waits
  end)

  it("the event first, then WfRuns start waiting: each StartWaiting correlates at once", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("paid", {}),
      put_step("order-5", "paid", { int = 42 }),
      wait_step("order-5", "paid", "wf-1"),
      wait_step("order-5", "paid", "wf-2", 1, 7),
      get_step("order-5", "paid"),
    })
    assert.same({}, ok(r[2]).reply.externalEvents)
    local first, second = ids_of(ok(r[3])), ids_of(ok(r[4]))
    assert.equal(1, #first)
    assert.equal(1, #second)
    assert.same({ "wf-1", "paid" }, { first[1].wf, first[1].def })
    assert.same({ "wf-2", "paid" }, { second[1].wf, second[1].def })
    local list = ok(r[5]).reply.externalEvents
    assert.equal(2, #list)
    assert.equal(first[1].guid, list[1].guid)
    assert.equal(second[1].guid, list[2].guid)
    local r2 = lhjs.run(srv.target, { get_event_step(list[2]) })
    local ev = ok(r2[1]).reply
    assert.same({ int = 42 }, ev.content)
    assert.same({ true, 1, 7 }, { ev.claimed, ev.threadRunNumber, ev.nodeRunPosition })
  end)

  it("delete_after_first_correlation: gone after the first correlation, so a late retry makes a new one", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("once", { deleteAfterFirstCorrelation = true }),
      wait_step("k1", "once", "wf-1"),
      wait_step("k1", "once", "wf-2"),
      put_step("k1", "once", { str = "v" }),
      get_step("k1", "once"),
      put_step("k1", "once", { str = "v" }), -- the trap: not ALREADY_EXISTS any more
      -- the other order: stored until a WfRun waits, then gone
      put_step("k2", "once", { str = "w" }),
      get_step("k2", "once"),
      wait_step("k2", "once", "wf-3"),
      get_step("k2", "once"),
    })
    local ce = ok(r[4]).reply
    assert.equal(2, #ce.externalEvents) -- both waiting WfRuns, then deleted
    assert.equal("NOT_FOUND", r[5].code)
    assert.same({}, ok(r[6], "late retry").reply.externalEvents)
    ok(r[8], "k2 before anyone waits")
    assert.equal(1, #ids_of(ok(r[9])))
    assert.equal("NOT_FOUND", r[10].code)
  end)

  it("ttl_seconds: the CorrelatedEvent expires; then its key is free and it correlates no more", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("short", { ttlSeconds = 1 }),
      put_step("k", "short", { str = "v" }),
      get_step("k", "short"),
      lhjs.until_code("NOT_FOUND", get_step("k", "short"), 15000),
      wait_step("k", "short", "wf-late"),
      put_step("k", "short", { str = "new" }),
    })
    local put = ok(r[2]).reply
    ok(r[3], "before expiry")
    assert.equal("NOT_FOUND", r[4].code, "did not expire within 15 s")
    assert.same({}, ids_of(ok(r[5]))) -- nothing left to correlate with
    local again = ok(r[6], "put after expiry").reply
    assert.not_equal(put.createdAt, again.createdAt)
    assert.equal(1, #again.externalEvents) -- wf-late was waiting
    -- expiry also frees the memory (swept every second): wait for the count, do not sleep
    local deadline = os.time() + 15
    local st
    repeat
      st = srv:stats()
      if st.correlated ~= 1 then require("littlehorse.core").sleep(0.05) end
    until st.correlated == 1 or os.time() > deadline
    assert.equal(1, st.correlated)
  end)

  it("StopWaiting: a node that stopped waiting (its timeout) gets nothing", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      def_step("d", {}),
      wait_step("k", "d", "wf-1", 0, 1),
      wait_step("k", "d", "wf-2", 0, 1),
      stop_step("k", "d", "wf-1", 0, 1),
      stop_step("k", "d", "wf-9", 0, 1), -- not waiting: not an error
      put_step("k", "d", { str = "v" }),
    })
    assert.equal("", ok(r[4]).reply_hex)
    ok(r[5])
    local ce = ok(r[6]).reply
    assert.equal(1, #ce.externalEvents)
    assert.equal("wf-2", ce.externalEvents[1].wfRunId.id)
  end)

  it("StartWaiting checks its request: a known def and a WfRunId", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      wait_step("k", "nope", "wf-1"),
      def_step("d", {}),
      lhjs.raw(devhook.START, require("pbwire").len_field(1, "k") .. require("pbwire").len_field(2, m.def_id("d")),
               "ExternalEventIdList"),
    })
    assert.equal("INVALID_ARGUMENT", r[1].code)
    assert.equal("No ExternalEventDef named nope", r[1].message)
    assert.equal("INVALID_ARGUMENT", r[3].code)
    assert.equal("lh-devserver: node_run_id.wf_run_id.id is required", r[3].message)
  end)

  it("--wait-correlation DEF:KEY:WFRUN starts a server with a WfRun waiting (keys may hold ':')", function()
    local srv = start { defs = { "paid" }, args = { "--wait-correlation", "paid:order:7:wf-x" } }
    assert.equal(1, srv:stats().waiting)
    local r = lhjs.run(srv.target, {
      def_step("paid", {}), -- the same def with a correlated_event_config (a put replaces it)
      put_step("order:7", "paid", { str = "v" }),
    })
    local ce = ok(r[2]).reply
    assert.equal(1, #ce.externalEvents)
    assert.equal("wf-x", ce.externalEvents[1].wfRunId.id)
    local r2 = lhjs.run(srv.target, { get_event_step(ce.externalEvents[1]) })
    assert.same({ 0, 1 }, { ok(r2[1]).reply.threadRunNumber, r2[1].reply.nodeRunPosition })
    -- a bad value or an unknown def stops the start (exit 2)
    for _, bad in ipairs { "paid:wf", "nodef:k:wf" } do
      local okk, err = pcall(devserver.start, { args = { "--wait-correlation", bad } })
      assert.is_false(okk)
      assert.matches("wait%-correlation", err)
    end
  end)

  it("the devhook Lua helper (grpc-probe) makes the same calls", function()
    local srv = start {}
    ok(lhjs.run(srv.target, { def_step("d", {}), put_step("k", "d", { str = "v" }) })[2])
    local r = devhook.start_waiting(srv.target, { key = "k", def = "d", wf_run_id = "wf-lua", thread = 1, position = 4 })
    assert.equal("OK", r.code)
    assert.equal(1, #r.ids)
    assert.same({ "wf-lua", "d" }, { r.ids[1].wf_run_id, r.ids[1].def })
    assert.equal(32, #r.ids[1].guid)
    assert.equal("OK", devhook.stop_waiting(srv.target, { key = "k", def = "d", wf_run_id = "wf-lua" }).code)
    assert.equal("INVALID_ARGUMENT", devhook.start_waiting(srv.target, { key = "k", def = "x", wf_run_id = "w" }).code)
  end)
end)

describe("dev server: concurrent PutCorrelatedEvent", function()
  it("200 calls with one key at once on one channel: one is stored, 199 get ALREADY_EXISTS", function()
    local srv = start { args = { "--threads", "4" } }
    ok(lhjs.run(srv.target, { def_step("d", {}) })[1])
    devhook.start_waiting(srv.target, { key = "hot", def = "d", wf_run_id = "wf-1" })
    local r = require("probe").run { target = srv.target, path = m.PATH.PutCorrelatedEvent, count = 200, timeout = 30,
                                     body = m.put_correlated { key = "hot", def = "d", content = m.V.int(1) } }
    local codes = {}
    for _, c in ipairs(r.calls) do codes[c.code] = (codes[c.code] or 0) + 1 end
    assert.same({ OK = 1, ALREADY_EXISTS = 199 }, codes)
    local st = srv:stats()
    assert.same({ 1, 1, 0 }, { st.correlated, st.events, st.waiting }) -- correlated exactly once
  end)
end)

describe("dev server: faults and counters on PutCorrelatedEvent", function()
  it("--store-then-fail: the CorrelatedEvent is stored, the reply lost; a retry gets ALREADY_EXISTS", function()
    local srv = start { args = { "--store-then-fail", "1", "--fail-code", "UNAVAILABLE" } }
    local r = lhjs.run(srv.target, {
      def_step("d", {}),
      put_step("k", "d", { str = "v" }),
      put_step("k", "d", { str = "v" }),
      get_step("k", "d"),
    })
    ok(r[1], "PutExternalEventDef takes no faults")
    assert.equal("UNAVAILABLE", r[2].code)
    assert.equal("ALREADY_EXISTS", r[3].code)
    assert.same({ str = "v" }, ok(r[4]).reply.content)
    local st = srv:stats()
    assert.equal(1, st.store_then_failed)
    assert.equal(2, st.put_correlated)
    assert.equal(1, st.get_correlated)
    assert.equal(1, st.put_def)
  end)

  it("--fail-next counts PutExternalEvent and PutCorrelatedEvent calls alike; nothing is stored", function()
    local srv = start { defs = { "plain" }, args = { "--fail-next", "2", "--fail-code", "INTERNAL" } }
    local r = lhjs.run(srv.target, {
      def_step("d", {}),
      put_step("k", "d", { str = "v" }),
      { sdk = "putExternalEvent", req = { wfRunId = { id = "w" }, externalEventDefId = { name = "plain" } } },
      put_step("k", "d", { str = "v" }),
    })
    ok(r[1])
    assert.equal("INTERNAL", r[2].code)
    assert.equal("INTERNAL", r[3].code)
    ok(r[4], "third call passes")
    local st = srv:stats()
    assert.same({ 2, 0, 1 }, { st.failed, st.events, st.correlated })
  end)
end)
