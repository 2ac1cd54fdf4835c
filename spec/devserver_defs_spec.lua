-- The dev server's ExternalEventDefs against the real server's semantics
-- (shared/docs/littlehorse-protocol.md sections 2.5, 3 and 8): PutExternalEventDef overwrites,
-- DeleteExternalEventDef, SearchExternalEventDef, and typed defs: content of the wrong type is
-- refused by PutExternalEvent and PutCorrelatedEvent with the real server's rules and texts.
-- Defs and content beyond what the official 0.14.0 codec can write (struct / array / map
-- types, VariableValue members 9-13) are sent as hand-written bytes (spec/support/lhmsg.lua).
local devserver = require "devserver"
local lhjs = require "lhjs"
local m = require "lhmsg"

local V, T = m.V, m.T
local defer = require "cleanup" (function(f) finally(f) end)

local function start(opts)
  local srv = devserver.start(opts)
  defer(function() srv:stop() end)
  return srv
end

local function ok(r, what)
  assert(r.code == "OK", (what or "call") .. ": " .. tostring(r.code) .. " " .. tostring(r.message))
  return r
end

local function raw_def(o) return lhjs.raw(m.PATH.PutExternalEventDef, m.put_def(o), "ExternalEventDef") end

describe("dev server: PutExternalEventDef / GetExternalEventDef / DeleteExternalEventDef", function()
  it("a put replaces an existing def unconditionally (created_at, retention, type, correlated config)", function()
    local srv = start { defs = { "evt" } }
    local r = lhjs.run(srv.target, {
      { sdk = "getExternalEventDef", req = { name = "evt" } },
      { sdk = "putExternalEventDef", req = { name = "evt", retentionPolicy = { secondsAfterPut = 60 },
                                              contentType = { returnType = { type = "INT" } },
                                              correlatedEventConfig = { ttlSeconds = 30 } } },
      { sdk = "getExternalEventDef", req = { name = "evt" } },
      { sdk = "putExternalEventDef", req = { name = "evt" } },
      { sdk = "getExternalEventDef", req = { name = "evt" } },
    })
    local first, typed = ok(r[1]).reply, ok(r[2]).reply
    assert.is_nil(first.typeInformation)
    assert.same({ secondsAfterPut = 60 }, typed.retentionPolicy)
    assert.same({ returnType = { type = "INT", masked = false } }, typed.typeInformation)
    assert.same({ ttlSeconds = 30, deleteAfterFirstCorrelation = false }, typed.correlatedEventConfig)
    assert.same(typed, ok(r[3]).reply)
    assert.is_true(typed.createdAt >= first.createdAt)
    local plain = ok(r[4]).reply
    assert.is_nil(plain.typeInformation)
    assert.is_nil(plain.correlatedEventConfig)
    assert.is_nil(plain.retentionPolicy)
    assert.same(plain, ok(r[5]).reply)
    assert.equal(1, srv:stats().defs)
  end)

  it("DeleteExternalEventDef deletes; a missing def is NOT_FOUND; events of a deleted def are refused", function()
    local srv = start { defs = { "gone" } }
    local r = lhjs.run(srv.target, {
      { sdk = "deleteExternalEventDef", req = { id = { name = "gone" } } },
      { sdk = "getExternalEventDef", req = { name = "gone" } },
      { sdk = "deleteExternalEventDef", req = { id = { name = "gone" } } },
      { sdk = "putExternalEvent", req = { wfRunId = { id = "w" }, externalEventDefId = { name = "gone" } } },
    })
    assert.same({}, ok(r[1]).reply) -- google.protobuf.Empty
    assert.equal("NOT_FOUND", r[2].code)
    assert.equal("Couldn't find ExternalEventDef gone", r[2].message)
    assert.equal("NOT_FOUND", r[3].code)
    assert.equal("Couldn't find provided ExternalEventDefModel", r[3].message)
    assert.equal("INVALID_ARGUMENT", r[4].code)
    assert.equal("No ExternalEventDef named gone", r[4].message)
    assert.equal(0, srv:stats().defs)
  end)

  it("SearchExternalEventDef: by name, a prefix, pages of `limit` with a bookmark", function()
    local srv = start { defs = { "b-two", "a-one", "b-one", "c", "b-three" } }
    local function search(req) return { sdk = "searchExternalEventDef", req = req } end
    local r = lhjs.run(srv.target, { search {}, search { prefix = "b-" }, search { prefix = "b-", limit = 2 } })
    local function names(reply)
      local out = {}
      for i, id in ipairs(reply.results) do out[i] = id.name end
      return out
    end
    assert.same({ "a-one", "b-one", "b-three", "b-two", "c" }, names(ok(r[1]).reply))
    assert.is_nil(r[1].reply.bookmark) -- nothing follows
    assert.same({ "b-one", "b-three", "b-two" }, names(ok(r[2]).reply))
    local page1 = ok(r[3]).reply
    assert.same({ "b-one", "b-three" }, names(page1))
    assert.is_table(page1.bookmark)
    local r2 = lhjs.run(srv.target, { search { prefix = "b-", limit = 2, bookmark = { ["$hex"] = page1.bookmark.hex } } })
    local page2 = ok(r2[1]).reply
    assert.same({ "b-two" }, names(page2))
    assert.is_nil(page2.bookmark)
  end)
end)

-- The type rules, each row checked with PutExternalEvent and PutCorrelatedEvent:
-- { type (TypeDefinition body), content (VariableValue body), detail for PutExternalEvent
-- (nil: accepted), detail for PutCorrelatedEvent (default: the same) }.
local ROWS = {
  { "INT", T.prim("INT"), V.int(5) },
  { "INT into DOUBLE", T.prim("DOUBLE"), V.int(5) },
  { "DOUBLE into INT", T.prim("INT"), V.double(1.5), "Value of type DOUBLE is not compatible with expected type INT" },
  { "STR", T.prim("STR"), V.str("s") },
  { "INT into STR", T.prim("STR"), V.int(1) },
  { "DOUBLE into STR", T.prim("STR"), V.double(2.5) },
  { "BOOL into STR", T.prim("STR"), V.bool(false) },
  { "BYTES into STR", T.prim("STR"), V.bytes("\0\1") },
  { "WF_RUN_ID into STR", T.prim("STR"), V.wf_run_id("w") },
  { "JSON_OBJ into STR", T.prim("STR"), V.json_obj("{}"), "Value of type JSON_OBJ is not compatible with expected type STR" },
  { "TIMESTAMP into STR", T.prim("STR"), V.timestamp(1), "Value of type TIMESTAMP is not compatible with expected type STR" },
  { "STR into BOOL", T.prim("BOOL"), V.str("true"), "Value of type STR is not compatible with expected type BOOL" },
  { "JSON_ARR", T.prim("JSON_ARR"), V.json_arr("[1]") },
  { "JSON_OBJ into JSON_ARR", T.prim("JSON_ARR"), V.json_obj("{}"), "Value of type JSON_OBJ is not compatible with expected type JSON_ARR" },
  { "TIMESTAMP", T.prim("TIMESTAMP"), V.timestamp(1700000000) },
  { "WF_RUN_ID", T.prim("WF_RUN_ID"), V.wf_run_id("w") },
  { "NULL into INT", T.prim("INT"), V.null },
  { "NULL (field absent) into INT", T.prim("INT"), nil },
  { "masked STR", T.prim("STR", true), V.bool(true) },
  { "masked INT", T.prim("INT", true), V.str("x"), "Value of type STR is not compatible with expected type INT MASKED" },
  { "array into a primitive", T.prim("INT"), V.array { V.int(1) }, "Value of type Array<INT> is not compatible with expected type INT" },
  { "Struct by name", T.struct("order", 1), V.struct("order", 2) },
  { "Struct of another name", T.struct("order", 1), V.struct("invoice", 1), "Value of type Struct<invoice,v1> is not compatible with expected type Struct<order,v1>" },
  { "STR into a Struct", T.struct("order"), V.str("x"), "Value of type STR is not compatible with expected type Struct<order,v0>" },
  { "Array<INT>", T.array(T.prim("INT")), V.array { V.int(1), V.int(2) } },
  { "empty array", T.array(T.prim("INT")), V.array {} },
  { "Array<INT> with a STR element", T.array(T.prim("INT")), V.array { V.int(1), V.str("x") }, "Array element type STR incompatible with expected element type INT" },
  { "Array<INT> with a NULL element", T.array(T.prim("INT")), V.array { V.int(1), V.null } },
  { "INT into an array", T.array(T.prim("INT")), V.int(1), "Value of type INT is not compatible with expected type Array<INT>" },
  -- PutExternalEvent pins the def's element type first (so INT elements fit DOUBLE one by one,
  -- whatever element_type the client wrote); PutCorrelatedEvent compares the array's own type.
  { "Array<DOUBLE> of INTs", T.array(T.prim("DOUBLE")), V.array { V.int(1), V.int(2) }, nil,
    "Value of type Array<INT> is not compatible with expected type Array<DOUBLE>" },
  { "Array<INT> claiming element_type STR", T.array(T.prim("INT")), V.array({ V.int(1) }, T.prim("STR")), nil,
    "Value of type Array<STR> is not compatible with expected type Array<INT>" },
  { "Array<Array<INT>> (one level deep, as the real server)", T.array(T.array(T.prim("INT"))),
    V.array { V.array { V.str("x") } }, nil,
    "Value of type Array<Array<STR>> is not compatible with expected type Array<Array<INT>>" },
  { "Map<STR, INT>", T.map(T.prim("STR"), T.prim("INT")), V.map { { V.str("a"), V.int(1) } } },
  { "Map<STR, INT> with INT keys (INT into STR)", T.map(T.prim("STR"), T.prim("INT")), V.map { { V.int(1), V.int(1) } }, nil,
    "Value of type Map<INT, INT> is not compatible with expected type Map<STR, INT>" },
  { "Map value of another type", T.map(T.prim("STR"), T.prim("INT")), V.map { { V.str("a"), V.int(1) }, { V.str("b"), V.str("x") } },
    "Map value type STR incompatible with expected value type INT" },
  { "Map key of another type", T.map(T.prim("INT"), T.prim("INT")), V.map { { V.int(1), V.int(1) }, { V.timestamp(5), V.int(1) } },
    "Map key type TIMESTAMP incompatible with expected key type INT" },
  { "empty map", T.map(T.prim("INT"), T.prim("INT")), V.map {} },
  { "JSON_OBJ into a map", T.map(T.prim("STR"), T.prim("STR")), V.json_obj("{}"), "Value of type JSON_OBJ is not compatible with expected type Map<STR, STR>" },
}

describe("dev server: typed ExternalEventDefs", function()
  it("content is checked against the def's type by PutExternalEvent and PutCorrelatedEvent (" .. #ROWS .. " rows)", function()
    local srv = start {}
    local steps = {}
    for i, row in ipairs(ROWS) do
      local def = "typed-" .. i
      steps[#steps + 1] = raw_def { name = def, type = row[2], correlated = {} }
      steps[#steps + 1] = lhjs.raw(m.PATH.PutExternalEvent, m.put_event { wf = "w", def = def, guid = "g", content = row[3] },
                                   "ExternalEvent")
      steps[#steps + 1] = lhjs.raw(m.PATH.PutCorrelatedEvent, m.put_correlated { key = "k", def = def, content = row[3] },
                                   "CorrelatedEvent")
    end
    local r = lhjs.run(srv.target, steps)
    for i, row in ipairs(ROWS) do
      local def, name = "typed-" .. i, row[1]
      local rd, re, rc = r[3 * i - 2], r[3 * i - 1], r[3 * i]
      ok(rd, name .. ": def")
      local want_event, want_correlated = row[4], row[5] or row[4]
      if want_event then
        assert.equal("INVALID_ARGUMENT", re.code, name)
        assert.equal("Invalid type of content for event. Check the return type of ExternalEventDef " .. def .. ": "
                     .. want_event, re.message, name)
      else
        ok(re, name .. ": PutExternalEvent")
      end
      if want_correlated then
        assert.equal("INVALID_ARGUMENT", rc.code, name)
        assert.equal("Invalid type of content for event: " .. def .. ": " .. want_correlated, rc.message, name)
      else
        ok(rc, name .. ": PutCorrelatedEvent")
      end
    end
  end)

  it("content is stored as sent: a pinned element type is not written into the reply", function()
    local srv = start {}
    local content = V.array({ V.int(1) }, T.prim("STR"))
    local r = lhjs.run(srv.target, {
      raw_def { name = "arr", type = T.array(T.prim("INT")) },
      lhjs.raw(m.PATH.PutExternalEvent, m.put_event { wf = "w", def = "arr", guid = "g", content = content }, "ExternalEvent"),
    })
    ok(r[1])
    local ev = ok(r[2]).raw
    assert.is_nil(ev["$problems"])
    assert.equal("STR", ev.content.array.element_type.primitive_type)
  end)

  it("a ReturnType without a type (void): PutExternalEvent does not check, PutCorrelatedEvent wants NULL", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      raw_def { name = "void", type = false, correlated = {} },
      lhjs.raw(m.PATH.PutExternalEvent, m.put_event { wf = "w", def = "void", content = V.int(1) }, "ExternalEvent"),
      lhjs.raw(m.PATH.PutCorrelatedEvent, m.put_correlated { key = "k", def = "void", content = V.int(1) }, "CorrelatedEvent"),
      lhjs.raw(m.PATH.PutCorrelatedEvent, m.put_correlated { key = "k", def = "void" }, "CorrelatedEvent"),
      -- a def without type information takes anything
      raw_def { name = "untyped", correlated = {} },
      lhjs.raw(m.PATH.PutCorrelatedEvent, m.put_correlated { key = "k", def = "untyped", content = V.map {} }, "CorrelatedEvent"),
    })
    ok(r[1])
    assert.same({}, r[1].raw.type_information) -- present, empty
    ok(r[2], "PutExternalEvent")
    assert.equal("INVALID_ARGUMENT", r[3].code)
    assert.equal("Invalid type of content for event: void: Expected void return type, but value is not empty.", r[3].message)
    ok(r[4], "NULL content")
    ok(r[6], "untyped")
  end)

  it("a repeated guid is ALREADY_EXISTS before the content's type is looked at", function()
    local srv = start {}
    local r = lhjs.run(srv.target, {
      { sdk = "putExternalEventDef", req = { name = "t", contentType = { returnType = { type = "INT" } } } },
      { sdk = "putExternalEvent", req = { wfRunId = { id = "w" }, externalEventDefId = { name = "t" }, guid = "g", content = { int = 1 } } },
      { sdk = "putExternalEvent", req = { wfRunId = { id = "w" }, externalEventDefId = { name = "t" }, guid = "g", content = { str = "x" } } },
      { sdk = "putExternalEvent", req = { wfRunId = { id = "w" }, externalEventDefId = { name = "t" }, guid = "g2", content = { str = "x" } } },
    })
    ok(r[2])
    assert.equal("ALREADY_EXISTS", r[3].code)
    assert.equal("ExternalEvent already exists", r[3].message)
    assert.equal("INVALID_ARGUMENT", r[4].code)
  end)
end)
