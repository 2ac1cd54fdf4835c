-- The dev server applies an ExternalEventDef's retention (seconds_after_put) as the real server
-- does (shared/docs/littlehorse-protocol.md: an unclaimed event is deleted that long after its
-- put, and deduplication by guid lasts only while the event is stored): the event is then not
-- found, not listed, not searched, and its guid stores a new event. The retention in force at
-- the put counts, also over a kill -9 and a replay of --store. docs/devserver.md, "Retention".
local core = require "littlehorse.core"
local devserver = require "devserver"

local defer = require "cleanup" (function(f) finally(f) end)

local function tmpfile()
  local f = os.tmpname()
  os.remove(f)
  defer(function() os.remove(f) end)
  return f
end

-- Polls fn until it returns a true value (a condition, not a fixed sleep); the deadline is
-- generous for a loaded machine.
local function eventually(fn, what, seconds)
  local deadline = core.now() + (seconds or 30)
  while true do
    local v = fn()
    if v then return v end
    assert(core.now() < deadline, "timed out waiting until " .. what)
    core.sleep(0.05)
  end
end

local function id(def, guid, wf)
  return { wf_run_id = wf or "wf-r", external_event_def_name = def, guid = guid }
end

local function put(client, def, guid, content, wf)
  local req = id(def, guid, wf)
  req.content = content
  return client:put_external_event(req)
end

local function gone(client, def, guid, wf)
  return function()
    local ev, err, code = client:get_external_event(id(def, guid, wf))
    if ev then return false end
    assert.equal("NOT_FOUND", code, tostring(err))
    return true
  end
end

local function guids(page)
  local out = {}
  for i, item in ipairs(page.results) do out[i] = (item.id or item).guid end
  table.sort(out)
  return out
end

describe("dev server retention (seconds_after_put)", function()
  it("forgets an unclaimed event after its def's retention: not found, not listed, and its guid stores a new event", function()
    local srv, client = devserver.with_client({}, 5)
    defer(function() devserver.release(srv, client) end)
    assert(client:put_external_event_def { name = "brief", seconds_after_put = 1 })
    assert(client:put_external_event_def { name = "kept", seconds_after_put = 3600 })
    assert(client:put_external_event_def { name = "forever" })

    local t0 = core.now()
    local first = assert(put(client, "brief", "g-1", 1))
    assert(put(client, "kept", "g-2", 2))
    assert(put(client, "forever", "g-3", 3))
    local _, _, code = put(client, "kept", "g-2", 22)
    assert.equal("ALREADY_EXISTS", code) -- deduplicated while stored
    local early = client:get_external_event(id("brief", "g-1"))
    if core.now() - t0 < 0.8 then assert.is_table(early, "gone before its retention") end

    eventually(gone(client, "brief", "g-1"), "the 1 s event is gone")
    assert.is_true(core.now() - t0 >= 0.9, "gone before its retention")
    local page = assert(client:list_external_events { wf_run_id = "wf-r" })
    assert.same({ "g-2", "g-3" }, guids(page))
    assert.same({}, guids(assert(client:search_external_events { external_event_def_name = "brief" })))
    assert.same({ "g-2" }, guids(assert(client:search_external_events { external_event_def_name = "kept" })))

    -- The same guid again: a new event (the late retry the outbox's max_age rule is about).
    assert(client:put_external_event_def { name = "brief", seconds_after_put = 3600 })
    local again = assert(put(client, "brief", "g-1", 11))
    assert.equal(11, again.content)
    assert.are_not.equal(tostring(first.created_at), tostring(again.created_at))
    assert.equal(11, assert(client:get_external_event(id("brief", "g-1"))).content)
    assert.same({ "g-1", "g-2", "g-3" }, guids(assert(client:list_external_events { wf_run_id = "wf-r" })))
  end)

  it("keeps each event's retention over kill -9 and replay: the one in force at its put", function()
    local file = tmpfile()
    local srv, client = devserver.with_client({ args = { "--store", file } }, 5)
    defer(function() devserver.release(srv, client) end)
    assert(client:put_external_event_def { name = "brief", seconds_after_put = 1 })
    assert(put(client, "brief", "g", 1))
    assert(put(client, "brief", "h", 1))
    eventually(gone(client, "brief", "g"), "g is gone")
    eventually(gone(client, "brief", "h"), "h is gone")
    -- A longer retention from now on; g is put again under it, h is not.
    assert(client:put_external_event_def { name = "brief", seconds_after_put = 3600 })
    assert(put(client, "brief", "g", 2))

    srv:kill("KILL")
    srv:restart()
    eventually(function() return client:get_external_event_def("brief") end, "the restarted server answers")
    local g = assert(client:get_external_event(id("brief", "g")))
    assert.equal(2, g.content)
    assert.is_true(gone(client, "brief", "h")(), "h came back after replay")
    assert.same({ "g" }, guids(assert(client:list_external_events { wf_run_id = "wf-r" })))
    local _, _, code = put(client, "brief", "g", 3)
    assert.equal("ALREADY_EXISTS", code)
    assert(put(client, "brief", "h", 4)) -- expired before the restart: its guid is free
  end)
end)
