-- Conformance of the dev server's wire format for the event API's newer messages with the
-- official littlehorse-client 0.14.0 codec (spec/conformance/client.js): every request below
-- is written by the official encoder (Type.encode(Type.fromPartial(...))), and every reply is
-- decoded twice from the same bytes, by the official decoder and by the independent one
-- (spec/conformance/rawpb.js, from the protocol's field tables), and checked field by field.
--
-- What 0.14.0 lacks is said where it matters and checked on the wire bytes alone:
--   - SearchCorrelatedEvent, CorrelatedEventIdList, DeleteCorrelatedEvent (no such RPCs);
--   - ListExternalEventsRequest.bookmark / limit and ExternalEventList.bookmark (fields 2-3);
--   - TypeDefinition members 5-8 (struct / array / map types; 0.14.0 calls member 1 `type`);
--   - the dev server's own DevServer service.
local devserver = require "devserver"
local devhook = require "devhook"
local lhjs = require "lhjs"
local m = require "lhmsg"
local pb = require "pbwire"

local defer = require "cleanup" (function(f) finally(f) end)

local LH = "/littlehorse.LittleHorse/"

-- A step: the official encoder writes `req` as `req_type`; the reply is decoded as `reply_type`.
local function call(rpc, req_type, req, reply_type)
  return { raw = LH .. rpc, encode = req_type, req = req, reply = reply_type }
end

local function decoded(r, what)
  assert(r.code == "OK", (what or "call") .. ": " .. tostring(r.code) .. " " .. tostring(r.message))
  assert.is_nil(r.raw_error, what)
  assert.is_nil(r.official_error, what)
  assert.is_nil(r.raw["$problems"], what) -- no unknown fields, wrong wire types, overruns
  return r.raw, r.official
end

-- Every `$problems` anywhere in a raw decoding.
local function problems(t, acc)
  acc = acc or {}
  if type(t) ~= "table" then return acc end
  for k, v in pairs(t) do
    if k == "$problems" then for _, p in ipairs(v) do acc[#acc + 1] = p end else problems(v, acc) end
  end
  return acc
end

-- The official decoder's ISO text (ms precision) for a raw Timestamp.
local function iso(ts)
  local s, nanos = tonumber(ts.seconds), ts.nanos or 0
  assert.equal(0, nanos % 1000000, "created_at has millisecond precision")
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", math.floor(nanos / 1000000))
end

local function same_external_event_id(raw, official)
  assert.equal(official.wfRunId.id, raw.wf_run_id.id.utf8)
  assert.equal(official.externalEventDefId.name, raw.external_event_def_id.name.utf8)
  assert.equal(official.guid, raw.guid.utf8)
end

describe("conformance of the event API's messages with the official 0.14.0 codec", function()
  local srv
  lazy_setup(function() srv = devserver.start {} end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("PutExternalEventDefRequest -> ExternalEventDef (type information, correlated-event config)", function()
    local r = lhjs.run(srv.target, {
      call("PutExternalEventDef", "PutExternalEventDefRequest", {
        name = "conf-def", retentionPolicy = { secondsAfterPut = 3600 },
        contentType = { returnType = { type = "STR", masked = true } },
        correlatedEventConfig = { ttlSeconds = 120, deleteAfterFirstCorrelation = true } }, "ExternalEventDef"),
      call("GetExternalEventDef", "ExternalEventDefId", { name = "conf-def" }, "ExternalEventDef"),
    })
    for i = 1, 2 do
      local raw, off = decoded(r[i], "def " .. i)
      assert.same({}, problems(raw))
      assert.equal("conf-def", raw.id.name.utf8)
      assert.equal("conf-def", off.id.name)
      assert.equal(off.createdAt, iso(raw.created_at))
      assert.equal("3600", raw.retention_policy.seconds_after_put)
      assert.equal(3600, off.retentionPolicy.secondsAfterPut)
      assert.equal("STR", raw.type_information.return_type.primitive_type)
      assert.is_true(raw.type_information.return_type.masked)
      assert.same({ type = "STR", masked = true }, off.typeInformation.returnType)
      assert.same({ ttl_seconds = "120", delete_after_first_correlation = true }, raw.correlated_event_config)
      assert.same({ ttlSeconds = 120, deleteAfterFirstCorrelation = true }, off.correlatedEventConfig)
    end
    assert.equal(r[1].reply_hex, r[2].reply_hex)
  end)

  it("TypeDefinition members newer than 0.14.0 (struct, array, map) travel unchanged", function()
    local T = m.T
    local ty = T.map(T.prim("STR"), T.array(T.struct("order", 3)))
    local r = lhjs.run(srv.target, { lhjs.raw(m.PATH.PutExternalEventDef, m.put_def { name = "conf-typed", type = ty },
                                              "ExternalEventDef") })
    local raw = decoded(r[1])
    local map = raw.type_information.return_type.inline_map_def
    assert.equal("STR", map.key_type.primitive_type)
    local arr = map.value_type.inline_array_def
    assert.same({ name = { utf8 = "order", hex = lhjs.hex("order") }, version = 3 }, arr.array_type.struct_def_id)
    local type_information
    for _, f in ipairs(pb.fields(lhjs.unhex(r[1].reply_hex))) do
      if f.field == 4 then type_information = f.value end
    end
    assert.equal(pb.len_field(1, ty), type_information) -- the ReturnType holds our bytes as sent
    -- the official 0.14.0 decoder reads a ReturnType whose TypeDefinition it cannot see into
    assert.is_table(r[1].official.typeInformation.returnType)
  end)

  it("PutCorrelatedEventRequest / CorrelatedEventId -> CorrelatedEvent; correlated ExternalEvents", function()
    local r = lhjs.run(srv.target, {
      call("PutExternalEventDef", "PutExternalEventDefRequest", { name = "conf-corr", correlatedEventConfig = {} }, "ExternalEventDef"),
      lhjs.raw(devhook.START, devhook.waiting_node_run { key = "ck", def = "conf-corr", wf_run_id = "conf-wf", thread = 2,
                                                           position = 6 }, "ExternalEventIdList"),
      call("PutCorrelatedEvent", "PutCorrelatedEventRequest",
           { key = "ck", externalEventDefId = { name = "conf-corr" }, content = { double = 2.5 } }, "CorrelatedEvent"),
      call("GetCorrelatedEvent", "CorrelatedEventId", { key = "ck", externalEventDefId = { name = "conf-corr" } },
           "CorrelatedEvent"),
    })
    decoded(r[1])
    local waited = decoded(r[2])
    assert.same({}, waited) -- an empty ExternalEventIdList: nothing correlated yet
    for i = 3, 4 do
      local raw, off = decoded(r[i], "correlated " .. i)
      assert.same({}, problems(raw))
      assert.equal("ck", raw.id.key.utf8)
      assert.equal("conf-corr", raw.id.external_event_def_id.name.utf8)
      assert.same({ key = "ck", externalEventDefId = { name = "conf-corr" } }, off.id)
      assert.equal(off.createdAt, iso(raw.created_at))
      assert.equal("double", raw.content["$member"])
      assert.equal(2.5, raw.content.double.value)
      assert.same({ double = 2.5 }, off.content)
      assert.equal(1, #raw.external_events)
      assert.equal(1, #off.externalEvents)
      same_external_event_id(raw.external_events[1], off.externalEvents[1])
      assert.equal("conf-wf", off.externalEvents[1].wfRunId.id)
    end
    assert.equal(r[3].reply_hex, r[4].reply_hex)
    local id = r[3].official.externalEvents[1]
    local r2 = lhjs.run(srv.target, { call("GetExternalEvent", "ExternalEventId", id, "ExternalEvent") })
    local raw, off = decoded(r2[1])
    same_external_event_id(raw.id, off.id)
    assert.same({ true, 2, 6 }, { raw.claimed, raw.thread_run_number, raw.node_run_position })
    assert.same({ true, 2, 6 }, { off.claimed, off.threadRunNumber, off.nodeRunPosition })
    assert.same({ double = 2.5 }, off.content)
  end)

  it("ListExternalEventsRequest -> ExternalEventList; SearchExternalEventRequest -> ExternalEventIdList", function()
    local steps = { call("PutExternalEventDef", "PutExternalEventDefRequest", { name = "conf-list" }, "ExternalEventDef") }
    for i = 1, 3 do
      steps[#steps + 1] = call("PutExternalEvent", "PutExternalEventRequest", {
        wfRunId = { id = "conf-lw" }, externalEventDefId = { name = "conf-list" }, guid = "g" .. i, content = { int = i },
        threadRunNumber = 0 }, "ExternalEvent")
    end
    steps[#steps + 1] = call("ListExternalEvents", "ListExternalEventsRequest", { wfRunId = { id = "conf-lw" } }, "ExternalEventList")
    steps[#steps + 1] = call("SearchExternalEvent", "SearchExternalEventRequest", {
      externalEventDefId = { name = "conf-list" }, limit = 2, isClaimed = false,
      earliestStart = "2000-01-01T00:00:00.000Z", latestStart = "2999-01-01T00:00:00.000Z" }, "ExternalEventIdList")
    local r = lhjs.run(srv.target, steps)
    for i = 1, 4 do decoded(r[i]) end
    local raw, off = decoded(r[5], "list")
    assert.same({}, problems(raw))
    assert.equal(3, #raw.results)
    assert.equal(3, #off.results)
    for i = 1, 3 do
      local re, oe = raw.results[i], off.results[i]
      same_external_event_id(re.id, oe.id)
      assert.equal("g" .. i, oe.id.guid)
      assert.equal(tostring(i), re.content.int)
      assert.same({ int = i }, oe.content)
      assert.equal(0, re.thread_run_number) -- explicit presence: written although 0
      assert.equal(0, oe.threadRunNumber)
      assert.is_nil(re.node_run_position)
      assert.is_nil(oe.nodeRunPosition)
      assert.equal(oe.createdAt, iso(re.created_at))
    end
    local results = pb.fields(lhjs.unhex(r[5].reply_hex))
    for i = 1, 3 do -- each result holds the bytes PutExternalEvent answered (the stored event)
      assert.equal(1, results[i].field)
      assert.equal(lhjs.unhex(r[i + 1].reply_hex), results[i].value)
    end
    assert.is_nil(raw.bookmark)
    local sraw, soff = decoded(r[6], "search")
    assert.equal(2, #sraw.results)
    for i = 1, 2 do same_external_event_id(sraw.results[i], soff.results[i]) end
    assert.equal("g1", soff.results[1].guid)
    assert.is_table(sraw.bookmark)
    assert.same(sraw.bookmark, soff.bookmark) -- bytes: { hex = ... } in both
  end)

  it("newer than 0.14.0: ListExternalEvents paging, SearchCorrelatedEvent, DeleteCorrelatedEvent (wire bytes)", function()
    local r = lhjs.run(srv.target, {
      call("PutExternalEventDef", "PutExternalEventDefRequest", { name = "conf-new", correlatedEventConfig = {} }, "ExternalEventDef"),
      call("PutExternalEvent", "PutExternalEventRequest", { wfRunId = { id = "conf-nw" }, externalEventDefId = { name = "conf-new" } },
           "ExternalEvent"),
      call("PutExternalEvent", "PutExternalEventRequest", { wfRunId = { id = "conf-nw" }, externalEventDefId = { name = "conf-new" } },
           "ExternalEvent"),
      call("PutCorrelatedEvent", "PutCorrelatedEventRequest", { key = "ck", externalEventDefId = { name = "conf-new" } },
           "CorrelatedEvent"),
    })
    for i = 1, 4 do decoded(r[i], "setup " .. i) end
    r = lhjs.run(srv.target, {
      lhjs.raw(m.PATH.ListExternalEvents, m.list_events { wf = "conf-nw", limit = 1 }, "ExternalEventList"),
      lhjs.raw(m.PATH.SearchCorrelatedEvent, m.search_correlated { def = "conf-new", limit = 5 }, "CorrelatedEventIdList"),
      lhjs.raw(m.PATH.DeleteCorrelatedEvent, m.delete_correlated("ck", "conf-new"), "Empty"),
      lhjs.raw(m.PATH.SearchCorrelatedEvent, m.search_correlated { def = "conf-new" }, "CorrelatedEventIdList"),
    })
    local list = decoded(r[1])
    assert.equal(1, #list.results)
    assert.is_table(list.bookmark)
    -- 0.14.0's ExternalEventList decoder skips field 2 and still reads the results
    assert.equal(1, #r[1].official.results)
    assert.is_nil(r[1].official.bookmark)
    local found = decoded(r[2])
    assert.same({ { key = { utf8 = "ck", hex = lhjs.hex("ck") },
                    external_event_def_id = { name = { utf8 = "conf-new", hex = lhjs.hex("conf-new") } } } }, found.results)
    assert.is_nil(found.bookmark)
    assert.equal("", decoded(r[3]) and r[3].reply_hex)
    assert.same({}, decoded(r[4]))
  end)

  it("DeleteExternalEventDefRequest -> Empty; SearchExternalEventDefRequest -> ExternalEventDefIdList", function()
    local r = lhjs.run(srv.target, {
      call("PutExternalEventDef", "PutExternalEventDefRequest", { name = "conf-zz1" }, "ExternalEventDef"),
      call("PutExternalEventDef", "PutExternalEventDefRequest", { name = "conf-zz2" }, "ExternalEventDef"),
      call("SearchExternalEventDef", "SearchExternalEventDefRequest", { prefix = "conf-zz", limit = 1 }, "ExternalEventDefIdList"),
      call("DeleteExternalEventDef", "DeleteExternalEventDefRequest", { id = { name = "conf-zz1" } }, "Empty"),
      call("SearchExternalEventDef", "SearchExternalEventDefRequest", { prefix = "conf-zz" }, "ExternalEventDefIdList"),
    })
    local p1raw, p1off = decoded(r[3])
    assert.same({ { name = { utf8 = "conf-zz1", hex = lhjs.hex("conf-zz1") } } }, p1raw.results)
    assert.same({ { name = "conf-zz1" } }, p1off.results)
    assert.same(p1raw.bookmark, p1off.bookmark)
    assert.equal("", r[4].reply_hex)
    decoded(r[4])
    local raw, off = decoded(r[5])
    assert.same({ { name = "conf-zz2" } }, off.results)
    assert.equal("conf-zz2", raw.results[1].name.utf8)
    assert.is_nil(raw.bookmark)
  end)
end)
