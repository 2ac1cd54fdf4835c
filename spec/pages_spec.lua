-- Listing and search through the client, against the dev server: the single-page calls
-- (list_external_events, search_external_events, search_correlated_events,
-- search_external_event_defs; blocking and async) and the iterators that follow bookmarks
-- lazily (external_events, external_event_ids, correlated_event_ids, external_event_def_ids):
-- page contents, filters, laziness (pages fetched as counted by the server), resuming from a
-- bookmark after a failed page, misuse, and a server that never moves on.
local lh = require "littlehorse"
local devserver = require "devserver"
local devhook = require "devhook"
local bad_peer = require "bad_peer"

local defer = require "cleanup" (function(f) finally(f) end)

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  assert.is_string(err)
  assert.truthy(err:find(text, 1, true), err)
  return err
end

local function client_for(srv, opts)
  local o = { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = lh.client(o)
  defer(function() c:close() end)
  return c
end

local function start(opts)
  local srv = devserver.start(opts)
  defer(function() srv:stop() end)
  return srv
end

-- Post events g1..gn on WfRun wf (def d); returns them as stored.
local function post_all(client, wf, def, n, prefix)
  local out = {}
  for i = 1, n do
    out[i] = assert(client:put_external_event { wf_run_id = wf, external_event_def_name = def,
                                                guid = (prefix or "g") .. i, content = i })
  end
  return out
end

local function guids(list)
  local out = {}
  for i, x in ipairs(list) do out[i] = (x.id or x).guid end
  return out
end

describe("list_external_events", function()
  it("answers one page of `limit` events in id order, with the bookmark of the next (none after the last)", function()
    local srv = start { defs = { "d" } }
    local client = client_for(srv)
    local stored = post_all(client, "wf", "d", 5)
    post_all(client, "other-wf", "d", 2)
    local p1 = assert(client:list_external_events { wf_run_id = "wf", limit = 2 })
    assert.same({ "g1", "g2" }, guids(p1.results))
    assert.same(stored[1], p1.results[1]) -- each result is the stored ExternalEvent, decoded in full
    assert.is_string(p1.bookmark)
    local p2 = assert(client:list_external_events { wf_run_id = "wf", limit = 2, bookmark = p1.bookmark })
    assert.same({ "g3", "g4" }, guids(p2.results))
    local p3 = assert(client:list_external_events { wf_run_id = "wf", limit = 2, bookmark = p2.bookmark })
    assert.same({ "g5" }, guids(p3.results))
    assert.is_nil(p3.bookmark)
    -- no limit: the server's default page holds them all
    local all = assert(client:list_external_events { wf_run_id = { id = "wf" } })
    assert.same({ "g1", "g2", "g3", "g4", "g5" }, guids(all.results))
    assert.is_nil(all.bookmark)
    assert.same({ results = {} }, assert(client:list_external_events { wf_run_id = "nobody" }))
  end)

  it("has an async form (wait and on_done)", function()
    local srv = start { defs = { "d" } }
    local client = client_for(srv)
    post_all(client, "wf", "d", 3)
    local h = client:list_external_events_async { wf_run_id = "wf", limit = 2 }
    local page = assert(h:wait())
    assert.same({ "g1", "g2" }, guids(page.results))
    local got
    client:list_external_events_async({ wf_run_id = "wf", bookmark = page.bookmark },
                                      { on_done = function(p, err) got = p or err end })
    while client:in_flight() > 0 do client:poll(0.05) end
    assert.same({ "g3" }, guids(got.results))
  end)
end)

describe("search_external_events", function()
  it("finds a def's event ids by time window and by claimed, a page at a time", function()
    local srv = start { defs = { "paid" } }
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "paid", correlated_event_config = true })
    local early = post_all(client, "wf-a", "paid", 3, "e")
    -- a WfRun that waits on key k gets an ExternalEvent (claimed) when the CorrelatedEvent comes
    assert.equal("OK", devhook.start_waiting(srv.target, { key = "k", def = "paid", wf_run_id = "wf-c" }).code)
    local ce = assert(client:put_correlated_event { key = "k", external_event_def_name = "paid", content = 1 })
    local claimed_guid = ce.external_events[1].guid
    local all = assert(client:search_external_events { external_event_def_name = "paid" })
    assert.equal(4, #all.results)
    for _, id in ipairs(all.results) do
      assert.same(id, assert(client:get_external_event(id)).id) -- ids that read back
    end
    local claimed = assert(client:search_external_events { external_event_def_name = "paid", is_claimed = true })
    assert.same({ claimed_guid }, guids(claimed.results))
    local unclaimed = assert(client:search_external_events { external_event_def_id = { name = "paid" }, is_claimed = false })
    assert.same({ "e1", "e2", "e3" }, guids(unclaimed.results))
    -- the window is inclusive at both ends
    local at = early[2].created_at
    local window = assert(client:search_external_events { external_event_def_name = "paid", is_claimed = false,
                                                          earliest_start = at, latest_start = at })
    local expect = {}
    for _, ev in ipairs(early) do if ev.created_at == at then expect[#expect + 1] = ev.id.guid end end
    assert.same(expect, guids(window.results))
    local page = assert(client:search_external_events { external_event_def_name = "paid", limit = 3 })
    assert.equal(3, #page.results)
    assert.is_string(page.bookmark)
    local rest = assert(client:search_external_events { external_event_def_name = "paid", limit = 3, bookmark = page.bookmark })
    assert.equal(1, #rest.results)
    assert.is_nil(rest.bookmark)
    -- async
    local h = client:search_external_events_async { external_event_def_name = "paid", is_claimed = true }
    assert.same({ claimed_guid }, guids(assert(h:wait()).results))
    -- the server's own refusal of an unknown def
    local none, err, code = client:search_external_events { external_event_def_name = "nope" }
    assert.is_nil(none)
    assert.equal("INVALID_ARGUMENT", code)
    assert.equal("SearchExternalEvent", err.method)
  end)
end)

describe("search_correlated_events and search_external_event_defs", function()
  it("find CorrelatedEvent ids (by has_external_events) and def ids (by prefix), with async forms", function()
    local srv = start { defs = { "ord-a", "ord-b", "zeta" } }
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "ord-a", correlated_event_config = true })
    assert.equal("OK", devhook.start_waiting(srv.target, { key = "k2", def = "ord-a", wf_run_id = "wf" }).code)
    for _, key in ipairs { "k1", "k2", "k3" } do
      assert(client:put_correlated_event { key = key, external_event_def_name = "ord-a", content = key })
    end
    local function keys(page)
      local out = {}
      for i, id in ipairs(page.results) do
        assert.same({ name = "ord-a" }, id.external_event_def_id)
        out[i] = id.key
      end
      table.sort(out)
      return out
    end
    assert.same({ "k1", "k2", "k3" }, keys(assert(client:search_correlated_events { external_event_def_name = "ord-a" })))
    assert.same({ "k2" }, keys(assert(client:search_correlated_events { external_event_def_name = "ord-a",
                                                                         has_external_events = true })))
    assert.same({ "k1", "k3" }, keys(assert(client:search_correlated_events_async {
      external_event_def_name = "ord-a", has_external_events = false }:wait())))
    local p1 = assert(client:search_correlated_events { external_event_def_name = "ord-a", limit = 2 })
    assert.equal(2, #p1.results)
    assert.is_string(p1.bookmark)

    assert.same({ results = { { name = "ord-a" }, { name = "ord-b" } } },
                assert(client:search_external_event_defs { prefix = "ord-" }))
    local d1 = assert(client:search_external_event_defs { limit = 1 })
    assert.same({ { name = "ord-a" } }, d1.results)
    local d2 = assert(client:search_external_event_defs_async({ limit = 5, bookmark = d1.bookmark }):wait())
    assert.same({ { name = "ord-b" }, { name = "zeta" } }, d2.results)
    assert.is_nil(d2.bookmark)
    assert.equal(3, #assert(client:search_external_event_defs()).results) -- no request: every def
  end)
end)

describe("iterators", function()
  it("fetch pages lazily: one call per page, only when the results in hand are used up", function()
    local srv = start { defs = { "d" } }
    local client = client_for(srv)
    post_all(client, "wf", "d", 5)
    local base = srv:stats().list_events
    local it = client:external_events("wf", { page_size = 2 })
    assert.equal(base, srv:stats().list_events) -- nothing fetched yet
    local first = it()
    assert.equal("g1", first.id.guid)
    assert.equal(1, first.content)
    assert.equal(base + 1, srv:stats().list_events)
    assert.equal("g2", it().id.guid)
    assert.equal(base + 1, srv:stats().list_events)
    assert.equal("g3", it().id.guid)
    assert.equal(base + 2, srv:stats().list_events)
    local rest = {}
    for ev in it do rest[#rest + 1] = ev.id.guid end
    assert.same({ "g4", "g5" }, rest)
    assert.equal(base + 3, srv:stats().list_events)
    assert.is_true(it.done)
    assert.equal(3, it.pages)
    assert.is_nil(it())
    assert.equal(base + 3, srv:stats().list_events) -- after the end: no more calls
    local all = {}
    for ev in client:external_events { id = "wf" } do all[#all + 1] = ev.id.guid end
    assert.same({ "g1", "g2", "g3", "g4", "g5" }, all)
    for _ in client:external_events("nobody") do error("an event of nobody") end
  end)

  it("search with def, since / upto (timestamps, RFC 3339 text, epoch seconds) and claimed", function()
    local srv = start { defs = { "paid", "other" } }
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "paid", correlated_event_config = true })
    local evs = post_all(client, "wf", "paid", 7)
    post_all(client, "wf", "other", 2)
    assert.equal("OK", devhook.start_waiting(srv.target, { key = "k", def = "paid", wf_run_id = "wf-c" }).code)
    local ce = assert(client:put_correlated_event { key = "k", external_event_def_name = "paid" })
    local function collect(filter)
      local out = {}
      for id in client:external_event_ids(filter) do
        assert.equal("paid", id.external_event_def_id.name)
        out[#out + 1] = id.guid
      end
      table.sort(out)
      return out
    end
    local seven = guids(evs)
    table.sort(seven)
    assert.same(seven, collect { def = "paid", claimed = false, page_size = 3 })
    assert.same({ ce.external_events[1].guid }, collect { def = "paid", claimed = true })
    assert.equal(8, #collect { def = { name = "paid" }, page_size = 1 })
    local first, last = evs[1].created_at, evs[7].created_at
    local inside = {}
    for _, ev in ipairs(evs) do if ev.created_at == first then inside[#inside + 1] = ev.id.guid end end
    table.sort(inside)
    assert.same(inside, collect { def = "paid", claimed = false, since = first, upto = first })
    assert.same(inside, collect { def = "paid", claimed = false, upto = tostring(first) })
    assert.same({}, collect { def = "paid", since = last.seconds + 3600 })
    assert.same(seven, collect { def = "paid", claimed = false, since = 0, upto = "9999-12-31T23:59:59Z" })

    local keys = {}
    for id in client:correlated_event_ids { def = "paid", has_external_events = true } do keys[#keys + 1] = id.key end
    assert.same({ "k" }, keys)
    for _ in client:correlated_event_ids { def = "paid", has_external_events = false } do error("one without events") end
    local defs = {}
    for id in client:external_event_def_ids { page_size = 1 } do defs[#defs + 1] = id.name end
    assert.same({ "other", "paid" }, defs)
    defs = {}
    for id in client:external_event_def_ids { prefix = "p" } do defs[#defs + 1] = id.name end
    assert.same({ "paid" }, defs)
    for _ in client:external_event_def_ids { prefix = "zz" } do error("no such def") end
  end)

  it("raise a failed page's error object; a new iterator resumes from its bookmark", function()
    local store = os.tmpname()
    defer(function() os.remove(store) end)
    local srv = start { defs = { "d" }, args = { "--store", store } }
    local client = client_for(srv, { timeout = 2 })
    post_all(client, "wf", "d", 6)
    local it = client:external_events("wf", { page_size = 2 })
    local seen = { it().id.guid, it().id.guid }
    srv:kill("KILL")
    local ok, err = pcall(it)
    assert.is_false(ok)
    assert.equal(lh.core.error_mt, getmetatable(err))
    assert.equal("UNAVAILABLE", err.code)
    assert.equal("ListExternalEvents", err.method)
    assert.is_string(it.bookmark) -- the page it could not fetch
    assert.is_false(it.done)
    srv:restart()
    for ev in client:external_events("wf", { page_size = 2, bookmark = it.bookmark }) do seen[#seen + 1] = ev.id.guid end
    assert.same({ "g1", "g2", "g3", "g4", "g5", "g6" }, seen)
  end)

  it("take timeout and metadata as call options of each page", function()
    local srv = start { defs = { "d" }, args = { "--delay-ms", "400" } }
    local client = client_for(srv)
    post_all(client, "wf", "d", 1)
    local ok, err = pcall(function()
      for _ in client:external_events("wf", { timeout = 0.05 }) do end
    end)
    assert.is_false(ok)
    assert.equal("DEADLINE_EXCEEDED", err.code)
    local n = 0
    for _ in client:external_events("wf", { timeout = 5, metadata = { ["x-trace"] = "t" } }) do n = n + 1 end
    assert.equal(1, n)
  end)

  it("stop with an error when the server answers with the bookmark it was sent", function()
    assert(bad_peer.ensure_grpc())
    local peer = bad_peer.start("stuck", "20")
    defer(function() peer:stop() end)
    local client = lh.client { target = peer.target, timeout = 5, config_file = false }
    defer(function() client:close() end)
    for _, case in ipairs {
      { function() return client:external_events("wf") end, "ListExternalEvents" },
      { function() return client:external_event_ids { def = "d" } end, "SearchExternalEvent" },
      { function() return client:correlated_event_ids { def = "d", page_size = 5 } end, "SearchCorrelatedEvent" },
      { function() return client:external_event_def_ids() end, "SearchExternalEventDef" },
    } do
      local calls_before = select(2, peer:log():gsub("CALL ", ""))
      local ok, err = pcall(function()
        for _ in case[1]() do error("the stuck peer has no results") end
      end)
      assert.is_false(ok)
      assert.equal("INTERNAL", err.code, tostring(err))
      assert.equal(case[2], err.method)
      assert.matches("bookmark it was sent", err.message)
      -- page 1 (no bookmark) and page 2 (the bookmark of page 1, answered with itself): no third
      assert.equal(calls_before + 2, select(2, peer:log():gsub("CALL ", "")))
    end
  end)
end)

describe("listing misuse", function()
  local srv, client
  lazy_setup(function() srv, client = devserver.with_client({ defs = { "d" } }, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  it("raises for a limit or page size below 1, naming the field (a page of 0 never ends)", function()
    local before = srv:stats().calls
    raises(function() client:list_external_events { wf_run_id = "w", limit = 0 } end,
           "bad argument #1 to 'list_external_events' (limit: must be at least 1")
    raises(function() client:search_external_events { external_event_def_name = "d", limit = -5 } end,
           "(limit: must be at least 1")
    raises(function() client:search_external_event_defs_async { limit = 1.5 } end,
           "bad argument #1 to 'search_external_event_defs_async' (limit: expected an integer, got a float with a fraction)")
    raises(function() client:external_events("w", { page_size = 0 }) end,
           "bad argument #2 to 'external_events' (page_size: expected an integer from 1")
    raises(function() client:external_event_ids { def = "d", page_size = 0 } end,
           "bad argument #1 to 'external_event_ids' (page_size: expected an integer from 1")
    assert.equal(before, srv:stats().calls) -- nothing was sent
  end)

  it("raises for unknown and missing fields and options, with the nearest valid name", function()
    raises(function() client:list_external_events { wf_run_id = "w", limt = 1 } end,
           "(limt: unknown field of a ListExternalEvents request (did you mean limit?))")
    raises(function() client:list_external_events { limit = 1 } end, "(wf_run_id: required")
    raises(function() client:search_external_events { is_claimed = true } end, "(external_event_def_name: required")
    raises(function() client:search_correlated_events { external_event_def_name = "d", has_external_event = true } end,
           "(has_external_event: unknown field of a SearchCorrelatedEvent request (did you mean has_external_events?))")
    raises(function() client:search_external_events { external_event_def_name = "d", earliest_start = "today" } end,
           "(earliest_start: expected a timestamp (lh.timestamp(...), or { seconds =, nanos = }), got string)")
    raises(function() client:search_external_events { external_event_def_name = "d", is_claimed = 1 } end,
           "(is_claimed: expected a boolean, got number)")
    raises(function() client:search_external_event_defs { prefix = "a", bookmark = 7 } end,
           "(bookmark: expected the bookmark of a page (a string), got number)")
    raises(function() client:external_event_ids { def = "d", claimd = true } end,
           "bad argument #1 to 'external_event_ids' (claimd: unknown option (did you mean claimed?))")
    raises(function() client:external_event_ids { claimed = true } end, "(def: required")
    raises(function() client:correlated_event_ids { def = "d", since = "yesterday" } end,
           "bad argument #1 to 'correlated_event_ids' (since: not an RFC 3339 date-time: \"yesterday\")")
    raises(function() client:external_event_def_ids { prefix = 5 } end, "(prefix: expected a string, got number)")
    raises(function() client:external_events(42) end, "bad argument #1 to 'external_events' (expected a WfRunId")
    raises(function() client.external_events("wf") end, "bad argument #1 to 'external_events' (littlehorse.client expected")
  end)
end)
