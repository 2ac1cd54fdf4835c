-- Every server semantic of the newer event API, through each form of the call: blocking,
-- async waited for with h:wait(), and async delivered to on_done by client:poll(). Each
-- scenario runs once per form against its own dev server, and must give the same answers:
-- the refusals (no correlated_event_config, a key taken, content of another type), correlation
-- with a waiting WfRun, delete_after_first_correlation and ttl_seconds, a def replaced by a
-- repeated put, and pages of `limit` that follow bookmarks.
local lh = require "littlehorse"
local rt = require "runtime"
local core = require "littlehorse.core"
local devserver = require "devserver"
local devhook = require "devhook"

local defer = require "cleanup" (function(f) finally(f) end)

local function start(opts)
  local srv = devserver.start(opts)
  defer(function() srv:stop() end)
  return srv
end

local function client_for(srv)
  local c = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
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

-- call(client, method, req) -> the blocking form's results, by each form.
local FORMS = {
  blocking = function(client, method, req) return client[method](client, req) end,
  wait = function(client, method, req)
    local h = client[method .. "_async"](client, req)
    local r = rt.pack(h:wait(10))
    assert.is_not_false(r[1], method .. ": still in flight after 10 s")
    return rt.unpack(r, 1, 3)
  end,
  on_done = function(client, method, req)
    local got
    local h = client[method .. "_async"](client, req, { on_done = function(...) got = rt.pack(...) end })
    assert.is_truthy(h)
    local t0 = core.now()
    while not got and core.now() - t0 < 10 do client:poll(0.05) end
    assert.is_table(got, method .. ": no on_done within 10 s")
    return rt.unpack(got, 1, 3)
  end,
}

for _, form in ipairs { "blocking", "wait", "on_done" } do
  local call = FORMS[form]

  describe("the event API, " .. form .. ":", function()
    it("PutCorrelatedEvent refuses a def without correlated_event_config, and a key taken for the def", function()
      local srv = start { defs = { "plain" } }
      local client = client_for(srv)
      local ce, err, code = call(client, "put_correlated_event", { key = "k", external_event_def_name = "plain" })
      assert.same({ nil, "INVALID_ARGUMENT" }, { ce, code })
      assert.matches("does not have CorrelatedEvent enabled", err.message)
      assert.equal("PutCorrelatedEvent", err.method)
      assert(call(client, "put_external_event_def", { name = "paid", correlated_event_config = true }))
      assert(call(client, "put_correlated_event", { key = "k", external_event_def_name = "paid", content = 1 }))
      ce, err, code = call(client, "put_correlated_event", { key = "k", external_event_def_name = "paid", content = 2 })
      assert.same({ nil, "ALREADY_EXISTS" }, { ce, code })
      assert.equal(1, assert(call(client, "get_correlated_event", { key = "k", external_event_def_name = "paid" })).content)
      -- a key the server refuses is refused before sending, by every form alike
      local ok, e = pcall(call, client, "put_correlated_event", { key = "a~b", external_event_def_name = "paid" })
      assert.is_false(ok)
      assert.matches("key: must not contain '/' or '~'", e)
    end)

    it("a WfRun waiting on the key gets an ExternalEvent made from it; delete_after_first_correlation deletes it", function()
      local srv = start {}
      local client = client_for(srv)
      assert(call(client, "put_external_event_def", { name = "once", correlated_event_config = { delete_after_first_correlation = true } }))
      assert.equal("OK", devhook.start_waiting(srv.target, { key = "order-1", def = "once", wf_run_id = "wf-1" }).code)
      local ce = assert(call(client, "put_correlated_event", { key = "order-1", external_event_def_name = "once", content = "paid" }))
      assert.equal(1, #ce.external_events)
      local id = ce.external_events[1]
      assert.same({ id = "wf-1" }, id.wf_run_id)
      assert.matches("^%x+$", id.guid)
      local ev = assert(call(client, "get_external_event", id))
      assert.same({ "paid", true }, { ev.content, ev.claimed })
      assert.equal("NOT_FOUND", select(3, call(client, "get_correlated_event", ce.id)))
      -- so the key is free again: the same post makes a second one (the trap)
      assert(call(client, "put_correlated_event", { key = "order-1", external_event_def_name = "once", content = "again" }))
    end)

    it("ttl_seconds: the CorrelatedEvent expires", function()
      local srv = start {}
      local client = client_for(srv)
      assert(call(client, "put_external_event_def", { name = "brief", correlated_event_config = { ttl_seconds = 1 } }))
      local ce = assert(call(client, "put_correlated_event", { key = "k", external_event_def_name = "brief" }))
      assert(call(client, "get_correlated_event", ce.id))
      assert.is_true(wait_for(function() return select(3, call(client, "get_correlated_event", ce.id)) == "NOT_FOUND" end))
    end)

    it("a typed def refuses content of another type for PutExternalEvent and PutCorrelatedEvent alike", function()
      local srv = start {}
      local client = client_for(srv)
      assert(call(client, "put_external_event_def", { name = "count", content_type = "INT", correlated_event_config = true }))
      local expect = "Invalid type of content for event. Check the return type of ExternalEventDef count: " ..
                     "Value of type STR is not compatible with expected type INT"
      local ev, err, code = call(client, "put_external_event", { wf_run_id = "w", external_event_def_name = "count", content = "7" })
      assert.same({ nil, "INVALID_ARGUMENT", expect }, { ev, code, err.message })
      ev, err, code = call(client, "put_correlated_event", { key = "k", external_event_def_name = "count", content = "7" })
      assert.same({ nil, "INVALID_ARGUMENT" }, { ev, code })
      assert.matches("Invalid type of content for event", err.message, 1, true)
      assert.equal(7, assert(call(client, "put_external_event", { wf_run_id = "w", external_event_def_name = "count", content = 7 })).content)
      assert.equal(7, assert(call(client, "put_correlated_event", { key = "k", external_event_def_name = "count", content = 7 })).content)
    end)

    it("a repeated PutExternalEventDef replaces the def unconditionally", function()
      local srv = start {}
      local client = client_for(srv)
      local first = assert(call(client, "put_external_event_def", { name = "d", content_type = "INT", seconds_after_put = 60,
                                                                    correlated_event_config = { ttl_seconds = 5 } }))
      assert.equal("INT", first.type_information)
      local second = assert(call(client, "put_external_event_def", { name = "d" }))
      assert.same({ nil, nil, nil }, { second.type_information, second.correlated_event_config, second.seconds_after_put })
      local read = assert(call(client, "get_external_event_def", "d"))
      assert.same(second, read)
      -- the old type no longer applies
      assert(call(client, "put_external_event", { wf_run_id = "w", external_event_def_name = "d", content = "text" }))
      assert(call(client, "delete_external_event_def", "d"))
      assert.equal("NOT_FOUND", select(3, call(client, "get_external_event_def", "d")))
    end)

    it("pages: `limit` caps a page, the opaque bookmark fetches the next, none after the last", function()
      local srv = start { defs = { "ev" } }
      local client = client_for(srv)
      for i = 1, 5 do
        assert(client:put_external_event { wf_run_id = "w", external_event_def_name = "ev", guid = "g" .. i, content = i })
      end
      assert(client:put_external_event_def { name = "corr", correlated_event_config = true })
      for i = 1, 3 do assert(client:put_correlated_event { key = "k" .. i, external_event_def_name = "corr" }) end
      local function all(method, req)
        local seen, pages = {}, 0
        repeat
          local page = assert(call(client, method, req))
          pages = pages + 1
          assert.is_true(#page.results <= req.limit)
          for _, r in ipairs(page.results) do seen[#seen + 1] = r end
          req.bookmark = page.bookmark
          assert.is_true(page.bookmark == nil or type(page.bookmark) == "string")
        until page.bookmark == nil
        return seen, pages
      end
      local evs, pages = all("list_external_events", { wf_run_id = "w", limit = 2 })
      assert.equal(5, #evs)
      assert.equal(3, pages)
      local ids = all("search_external_events", { external_event_def_name = "ev", limit = 2 })
      assert.equal(5, #ids)
      local guids = {}
      for i, id in ipairs(ids) do guids[i] = id.guid end
      table.sort(guids)
      assert.same({ "g1", "g2", "g3", "g4", "g5" }, guids)
      local cids = all("search_correlated_events", { external_event_def_name = "corr", limit = 2 })
      assert.equal(3, #cids)
      local defs = all("search_external_event_defs", { limit = 1 })
      assert.equal(2, #defs)
    end)
  end)
end
