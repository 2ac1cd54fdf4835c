-- The dev server's --store journal with the kinds of record the event API added
-- (docs/devserver.md, "Persistent store"): CorrelatedEvents with their expiry, waiting
-- NodeRuns, replaced and deleted ExternalEventDefs survive kill -9; a file written by an
-- earlier server (header LHDSJRN1) is read and upgraded; a record kind this server does not
-- know stops the start instead of being cut off.
local devserver = require "devserver"
local devhook = require "devhook"
local lhjs = require "lhjs"
local sh = require "sh"
local rt = require "runtime"

local defer = require "cleanup" (function(f) finally(f) end)

local function ok(r, what)
  assert(r.code == "OK", (what or "call") .. ": " .. tostring(r.code) .. " " .. tostring(r.message))
  return r
end

local function tmpfile()
  local f = os.tmpname()
  os.remove(f)
  defer(function() os.remove(f) end)
  return f
end

-- One journal record: u32 len | u32 crc | kind | u32 klen | key | value (little-endian);
-- crc32 (IEEE), as the journal writes it
local function record(kind, key, value)
  local body = kind .. rt.u32le(#key) .. key .. value
  return rt.u32le(#body) .. rt.u32le(rt.crc32(body)) .. body
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

describe("dev server --store: the event API's records", function()
  it("keeps CorrelatedEvents, waiting NodeRuns, replaced and deleted defs over kill -9", function()
    local file = tmpfile()
    local srv = devserver.start { args = { "--store", file } }
    defer(function() srv:stop() end)
    local r = lhjs.run(srv.target, {
      { sdk = "putExternalEventDef", req = { name = "d", correlatedEventConfig = { ttlSeconds = 3600 } } },
      { sdk = "putCorrelatedEvent", req = { key = "kept", externalEventDefId = { name = "d" }, content = { int = 1 } } },
      lhjs.raw(devhook.START, devhook.waiting_node_run { key = "later", def = "d", wf_run_id = "wf-w" }, "ExternalEventIdList"),
      { sdk = "putExternalEventDef", req = { name = "typed" } },
      { sdk = "putExternalEventDef", req = { name = "typed", contentType = { returnType = { type = "STR" } } } },
      { sdk = "putExternalEventDef", req = { name = "dropped" } },
      { sdk = "deleteExternalEventDef", req = { id = { name = "dropped" } } },
      { sdk = "putExternalEventDef", req = { name = "short", correlatedEventConfig = { ttlSeconds = 1 } } },
      { sdk = "putCorrelatedEvent", req = { key = "brief", externalEventDefId = { name = "short" } } },
    })
    for i = 1, 9 do ok(r[i], "step " .. i) end
    local kept = r[2].reply
    local r0 = lhjs.run(srv.target, { lhjs.until_code("NOT_FOUND", { sdk = "getCorrelatedEvent",
                                                                      req = { key = "brief", externalEventDefId = { name = "short" } } }, 15000) })
    assert.equal("NOT_FOUND", r0[1].code, "the 1 s CorrelatedEvent did not expire")
    srv:kill("KILL")
    srv:restart()
    local st = srv:stats()
    assert.same({ 3, 1, 1 }, { st.defs, st.correlated, st.waiting }) -- "brief" is expired: replay drops it
    assert.is_true(st.store_replayed >= 9)
    local r2 = lhjs.run(srv.target, {
      { sdk = "getCorrelatedEvent", req = { key = "kept", externalEventDefId = { name = "d" } } },
      { sdk = "getExternalEventDef", req = { name = "typed" } },
      { sdk = "getExternalEventDef", req = { name = "dropped" } },
      { sdk = "putCorrelatedEvent", req = { key = "later", externalEventDefId = { name = "d" }, content = { int = 2 } } },
      { sdk = "getCorrelatedEvent", req = { key = "brief", externalEventDefId = { name = "short" } } },
      { sdk = "putCorrelatedEvent", req = { key = "kept", externalEventDefId = { name = "d" } } },
    })
    assert.same(kept, ok(r2[1]).reply)
    assert.same({ returnType = { type = "STR", masked = false } }, ok(r2[2]).reply.typeInformation)
    assert.equal("NOT_FOUND", r2[3].code)
    local later = ok(r2[4]).reply
    assert.equal(1, #later.externalEvents) -- the replayed waiting WfRun
    assert.equal("wf-w", later.externalEvents[1].wfRunId.id)
    assert.equal("NOT_FOUND", r2[5].code)
    assert.equal("ALREADY_EXISTS", r2[6].code)
    -- and the correlation itself was journaled: after another restart the event is there and
    -- nothing waits any more
    srv:kill("KILL")
    srv:restart()
    local r3 = lhjs.run(srv.target, { { sdk = "getExternalEvent", req = later.externalEvents[1] } })
    assert.same({ int = 2 }, ok(r3[1]).reply.content)
    assert.equal(0, srv:stats().waiting)
  end)

  it("reads a file an earlier server wrote (LHDSJRN1) and rewrites its header as LHDSJRN2", function()
    local file = tmpfile()
    -- ExternalEventDef { 1 { 1 "old" } } and an ExternalEvent of it, as an earlier server stored them
    local def = "\10\5\10\3old"
    local ev = "\10\21\10\4\10\2wf\18\5\10\3old\26\6guid-1" .. "\26\4\50\2hi"
    write(file, "LHDSJRN1" .. record("D", "old", def) .. record("E", "wf/old/guid-1", ev))
    local srv = devserver.start { args = { "--store", file } }
    defer(function() srv:stop() end)
    local r = lhjs.run(srv.target, {
      { sdk = "getExternalEventDef", req = { name = "old" } },
      { sdk = "getExternalEvent", req = { wfRunId = { id = "wf" }, externalEventDefId = { name = "old" }, guid = "guid-1" } },
    })
    assert.equal("old", ok(r[1]).reply.id.name)
    assert.same({ str = "hi" }, ok(r[2]).reply.content)
    assert.equal("LHDSJRN2", sh.read_file(file):sub(1, 8))
  end)

  it("a record kind it does not know stops the start; the file is left as it was", function()
    local file = tmpfile()
    local bytes = "LHDSJRN2" .. record("D", "d", "\10\3\10\1d") .. record("Z", "k", "from the future")
    write(file, bytes)
    local okk, err = pcall(devserver.start, { args = { "--store", file } })
    assert.is_false(okk)
    assert.matches("unknown record kind 0x5a at byte 27 %(written by a newer lh%-devserver%?%)", err)
    assert.equal(bytes, sh.read_file(file))
  end)
end)
