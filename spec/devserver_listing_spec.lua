-- The dev server's listing and search RPCs against the real server's semantics
-- (shared/docs/littlehorse-protocol.md section 8; docs/devserver.md): ListExternalEvents,
-- SearchExternalEvent, SearchCorrelatedEvent. Pages hold at most `limit` results (100 when
-- unset), the bookmark is opaque and absent when nothing follows. The official 0.14.0 SDK
-- drives what it has; ListExternalEventsRequest's bookmark / limit, ExternalEventList's
-- bookmark and all of SearchCorrelatedEvent are newer, so those go as hand-written bytes
-- (spec/support/lhmsg.lua) with replies read by the independent decoder.
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

local function ok(r, what)
  assert(r.code == "OK", (what or "call") .. ": " .. tostring(r.code) .. " " .. tostring(r.message))
  return r
end

local function put_event(wf, def, guid)
  return { sdk = "putExternalEvent", req = { wfRunId = { id = wf }, externalEventDefId = { name = def }, guid = guid,
                                             content = { str = guid } } }
end

local function list_raw(o) return lhjs.raw(m.PATH.ListExternalEvents, m.list_events(o), "ExternalEventList") end

local function guids_raw(reply) -- raw ExternalEventList -> guids
  local out = {}
  for i, ev in ipairs(reply.results or {}) do out[i] = ev.id.guid.utf8 end
  return out
end

describe("dev server: ListExternalEvents", function()
  it("lists one WfRun's events in id order (official 0.14.0: one call, no paging)", function()
    local srv = start { defs = { "a", "b" } }
    local r = lhjs.run(srv.target, {
      put_event("wf", "b", "g2"), put_event("wf", "a", "g9"), put_event("wf", "a", "g1"),
      put_event("wf_child", "a", "x"), put_event("other", "a", "y"), -- other WfRuns
      { sdk = "listExternalEvents", req = { wfRunId = { id = "wf" } } },
      { sdk = "listExternalEvents", req = { wfRunId = { id = "nobody" } } },
    })
    local list = ok(r[6]).reply.results
    local got = {}
    for i, ev in ipairs(list) do got[i] = ev.id.externalEventDefId.name .. "/" .. ev.id.guid end
    assert.same({ "a/g1", "a/g9", "b/g2" }, got)
    assert.same(ok(r[3]).reply, list[1]) -- each result is the stored ExternalEvent
    assert.same({}, ok(r[7]).reply.results)
  end)

  it("pages of `limit` with a bookmark (newer than 0.14.0: raw bytes)", function()
    local srv = start { defs = { "d" } }
    local steps = {}
    for i = 1, 5 do steps[i] = put_event("wf", "d", "g" .. i) end
    steps[6] = list_raw { wf = "wf", limit = 2 }
    steps[7] = list_raw { wf = "wf" }                                 -- no limit: 100
    steps[8] = list_raw { wf = "wf", limit = 0 }                      -- an empty page with a bookmark
    steps[9] = list_raw { wf = "wf", bookmark = "not ours" }          -- INTERNAL, as the real server
    steps[10] = list_raw { wf = "wf", bookmark = "", limit = 5 }      -- empty: no bookmark
    local r = lhjs.run(srv.target, steps)
    local p1 = ok(r[6]).raw
    assert.is_nil(p1["$problems"])
    assert.same({ "g1", "g2" }, guids_raw(p1))
    assert.is_table(p1.bookmark)
    assert.same({ "g1", "g2", "g3", "g4", "g5" }, guids_raw(ok(r[7]).raw))
    assert.is_nil(r[7].raw.bookmark)
    local official = {}
    for i, ev in ipairs(r[6].official.results) do official[i] = ev.id.guid end
    assert.same({ "g1", "g2" }, official) -- the official 0.14.0 codec skips the bookmark field
    assert.same({}, guids_raw(ok(r[8]).raw))
    assert.equal(p1.bookmark.hex:sub(1, 2), r[8].raw.bookmark.hex:sub(1, 2))
    assert.equal("INTERNAL", r[9].code)
    assert.equal("An unexpected internal error occurred. Please contact support for assistance.", r[9].message)
    assert.equal(5, #guids_raw(ok(r[10]).raw))
    -- follow the bookmarks to the end
    local seen, bookmark = {}, lhjs.unhex(p1.bookmark.hex)
    for _, g in ipairs(guids_raw(p1)) do seen[#seen + 1] = g end
    for _ = 1, 5 do
      local page = ok(lhjs.run(srv.target, { list_raw { wf = "wf", limit = 2, bookmark = bookmark } })[1]).raw
      for _, g in ipairs(guids_raw(page)) do seen[#seen + 1] = g end
      if not page.bookmark then break end
      bookmark = lhjs.unhex(page.bookmark.hex)
    end
    assert.same({ "g1", "g2", "g3", "g4", "g5" }, seen)
  end)
end)

describe("dev server: SearchExternalEvent", function()
  it("needs an existing def", function()
    local srv = start { defs = { "d" } }
    local r = lhjs.run(srv.target, {
      { sdk = "searchExternalEvent", req = {} },
      { sdk = "searchExternalEvent", req = { externalEventDefId = { name = "nope" } } },
      { sdk = "searchExternalEvent", req = { externalEventDefId = { name = "d" } } },
    })
    assert.equal("INVALID_ARGUMENT", r[1].code)
    assert.equal("Missing required argument: ExternalEventDefId.", r[1].message)
    assert.equal("INVALID_ARGUMENT", r[2].code)
    assert.equal('ExternalEventDef "nope" does not exist.', r[2].message)
    assert.same({}, ok(r[3]).reply.results)
  end)

  it("finds a def's events in created_at order; pages, is_claimed and the time window filter", function()
    local srv = start { defs = { "d", "other" } }
    local steps = {}
    for i = 1, 6 do steps[#steps + 1] = put_event("wf-" .. i, "d", "g" .. i) end
    steps[#steps + 1] = put_event("wf-x", "other", "gx")
    -- two claimed events: made by correlation with waiting WfRuns
    steps[#steps + 1] = { sdk = "putExternalEventDef", req = { name = "d", correlatedEventConfig = {} } }
    steps[#steps + 1] = lhjs.raw(devhook.START, devhook.waiting_node_run { key = "k", def = "d", wf_run_id = "wf-c1" },
                                 "ExternalEventIdList")
    steps[#steps + 1] = lhjs.raw(devhook.START, devhook.waiting_node_run { key = "k", def = "d", wf_run_id = "wf-c2" },
                                 "ExternalEventIdList")
    steps[#steps + 1] = { sdk = "putCorrelatedEvent", req = { key = "k", externalEventDefId = { name = "d" } } }
    local r = lhjs.run(srv.target, steps)
    local created = {}
    for i = 1, 6 do created["wf-" .. i] = ok(r[i]).reply.createdAt end -- ISO text: sorts as time does
    assert.equal(2, #ok(r[11]).reply.externalEvents)

    local function search(req) return { sdk = "searchExternalEvent", req = req } end
    local def = { name = "d" }
    local times = {}
    for _, t in pairs(created) do times[#times + 1] = t end
    table.sort(times)
    local lo, hi = times[2], times[5]
    local r2 = lhjs.run(srv.target, {
      search { externalEventDefId = def },
      search { externalEventDefId = def, isClaimed = true },
      search { externalEventDefId = def, isClaimed = false },
      search { externalEventDefId = def, limit = 3 },
      search { externalEventDefId = def, isClaimed = false, earliestStart = lo, latestStart = hi },
      search { externalEventDefId = def, bookmark = { ["$hex"] = "00" } }, -- not ours: from the start
    })
    local function wfs(reply)
      local out = {}
      for i, id in ipairs(reply.results) do out[i] = id.wfRunId.id end
      return out
    end
    local all = wfs(ok(r2[1]).reply)
    assert.equal(8, #all)
    assert.is_nil(r2[1].reply.bookmark)
    for i = 1, 6 do assert.equal("wf-" .. i, all[i]) end -- put one after the other: created_at order
    local claimed = wfs(ok(r2[2]).reply)
    table.sort(claimed)
    assert.same({ "wf-c1", "wf-c2" }, claimed)
    assert.same({ "wf-1", "wf-2", "wf-3", "wf-4", "wf-5", "wf-6" }, wfs(ok(r2[3]).reply))
    local p1 = ok(r2[4]).reply
    assert.same({ "wf-1", "wf-2", "wf-3" }, wfs(p1))
    assert.is_table(p1.bookmark)
    local want = {}
    for i = 1, 6 do
      local t = created["wf-" .. i]
      if t >= lo and t <= hi then want[#want + 1] = "wf-" .. i end
    end
    assert.same(want, wfs(ok(r2[5]).reply))
    assert.equal(8, #wfs(ok(r2[6]).reply))
    local r3 = lhjs.run(srv.target, { search { externalEventDefId = def, limit = 3, bookmark = { ["$hex"] = p1.bookmark.hex } } })
    assert.same({ "wf-4", "wf-5", "wf-6" }, wfs(ok(r3[1]).reply))
    assert.is_table(r3[1].reply.bookmark) -- the claimed two follow
  end)
end)

describe("dev server: SearchCorrelatedEvent (newer than 0.14.0: raw bytes)", function()
  local function search(o) return lhjs.raw(m.PATH.SearchCorrelatedEvent, m.search_correlated(o), "CorrelatedEventIdList") end
  local function keys(raw)
    local out = {}
    for i, id in ipairs(raw.results or {}) do out[i] = id.key.utf8 end
    return out
  end

  it("finds a def's CorrelatedEvents in created_at order; has_external_events; pages", function()
    local srv = start {}
    local steps = {
      { sdk = "putExternalEventDef", req = { name = "d", correlatedEventConfig = {} } },
      { sdk = "putExternalEventDef", req = { name = "e", correlatedEventConfig = {} } },
      lhjs.raw(devhook.START, devhook.waiting_node_run { key = "k2", def = "d", wf_run_id = "w" }, "ExternalEventIdList"),
    }
    for i = 1, 4 do
      steps[#steps + 1] = { sdk = "putCorrelatedEvent", req = { key = "k" .. i, externalEventDefId = { name = "d" } } }
    end
    steps[#steps + 1] = { sdk = "putCorrelatedEvent", req = { key = "k1", externalEventDefId = { name = "e" } } }
    steps[#steps + 1] = search { def = "d" }
    steps[#steps + 1] = search { def = "d", has_external_events = true }
    steps[#steps + 1] = search { def = "d", has_external_events = false }
    steps[#steps + 1] = search { def = "d", limit = 3 }
    steps[#steps + 1] = search {} -- no def: nothing (the real server's index has no entry for "")
    steps[#steps + 1] = search { def = "d", bookmark = "junk" } -- not ours: from the start
    local r = lhjs.run(srv.target, steps)
    for i = 1, 8 do ok(r[i], "setup " .. i) end
    local all = ok(r[9]).raw
    assert.is_nil(all["$problems"])
    assert.same({ "k1", "k2", "k3", "k4" }, keys(all))
    assert.equal("d", all.results[1].external_event_def_id.name.utf8)
    assert.is_nil(all.bookmark)
    assert.same({ "k2" }, keys(ok(r[10]).raw))
    assert.same({ "k1", "k3", "k4" }, keys(ok(r[11]).raw))
    local p1 = ok(r[12]).raw
    assert.same({ "k1", "k2", "k3" }, keys(p1))
    assert.is_table(p1.bookmark)
    assert.same({}, keys(ok(r[13]).raw))
    assert.same({ "k1", "k2", "k3", "k4" }, keys(ok(r[14]).raw))
    local r2 = lhjs.run(srv.target, { search { def = "d", limit = 3, bookmark = lhjs.unhex(p1.bookmark.hex) } })
    local p2 = ok(r2[1]).raw
    assert.same({ "k4" }, keys(p2))
    assert.is_nil(p2.bookmark)
  end)
end)
