-- littlehorse.outbox (lh.outbox) against a real dev server: a post returns its guid only once
-- the record is in the file; delivery sends each record with its own guid until the server has
-- it (success or ALREADY_EXISTS), backs off retryable failures (RetryInfo honoured), turns
-- rejected records into dead letters that can be listed, requeued and purged; limits refuse
-- posts clearly; ordered outboxes keep each WfRun's order; stats() counts it all.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local sh = require "sh"
local rt = require "runtime"

local q = sh.q
local DEF = "outbox-event"
local defer = require "cleanup" (function(f) finally(f) end)

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/lh-outbox.XXXXXX")
  local d = p:read("*l")
  p:close()
  defer(function() os.execute("rm -rf " .. q(d)) end)
  return d
end

-- A dev server (args as devserver.start takes them), a client for it, and an outbox in a new
-- directory delivering with that client; all closed and stopped when the test ends.
local function setup(server_args, outbox_opts, defs)
  local srv = devserver.start { defs = defs or { DEF }, args = server_args }
  local client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 2, config_file = false }
  local opts = { client = client, initial_backoff = 0.01, max_backoff = 0.05, poll_interval = 0.02 }
  for k, v in pairs(outbox_opts or {}) do opts[k] = v end
  local path = tmpdir() .. "/outbox.db"
  local ob = assert(lh.outbox(path, opts))
  defer(function()
    ob:close()
    client:close()
    srv:stop()
  end)
  return srv, client, ob, path
end

local function event(wf, content, guid)
  return { wf_run_id = wf, external_event_def_name = DEF, content = content, guid = guid }
end

describe("lh.outbox", function()
  it("returns a guid once the record is in the file; drain delivers each once, with that guid", function()
    local srv, client, ob, path = setup()
    local guids = {}
    for i = 1, 50 do
      local guid, how = ob:post(event("wf-" .. (i % 4), { n = i }))
      assert.equal("durable", how)
      guids[i] = guid
      -- already in the file, as another connection to it sees
      if i == 1 then
        local other = assert(lh.outbox(path))
        assert.equal(guid, assert(other:pending())[1].guid)
        other:close()
      end
    end
    assert.equal("given", ob:post(event("wf-x", "g", "given")))
    -- post_event's arguments, as client:post_event takes them
    local pe, how = ob:post_event("wf-x", DEF, { via = "post_event" }, { guid = "pe-guid", thread_run_number = 0 })
    assert.same({ "pe-guid", "durable" }, { pe, how })
    local st = assert(ob:stats())
    assert.same({ 52, 52, 0 }, { st.accepted, st.pending, st.delivered })
    assert.equal(0, srv:stats().events) -- nothing is sent before delivery runs
    local counts = ob:drain(30)
    assert.same({ delivered = 52, duplicates = 0, retries = 0, dead = 0, pending = 0 }, counts)
    assert.equal(52, srv:stats().events)
    for i, guid in ipairs(guids) do
      local ev = assert(client:get_external_event { wf_run_id = "wf-" .. (i % 4), external_event_def_name = DEF,
                                                    guid = guid })
      assert.equal(i, ev.content.n)
    end
    assert(client:get_external_event { wf_run_id = "wf-x", external_event_def_name = DEF, guid = "given" })
    local ev = assert(client:get_external_event { wf_run_id = "wf-x", external_event_def_name = DEF, guid = "pe-guid" })
    assert.same({ "post_event", 0 }, { ev.content.via, ev.thread_run_number })
    st = assert(ob:stats())
    assert.same({ 52, 52, 0, 0 }, { st.accepted, st.delivered, st.pending, st.bytes })
    assert.equal(0, st.oldest_pending_age)
  end)

  it("counts an event the server already has (ALREADY_EXISTS) as delivered, a duplicate, and keeps the server's", function()
    local srv, client, ob = setup()
    assert(client:put_external_event(event("wf", "first", "same-guid")))
    ob:post(event("wf", "second", "same-guid"))
    local counts = ob:drain(30)
    assert.same({ 0, 1, 0 }, { counts.delivered, counts.duplicates, counts.pending })
    assert.equal("first", assert(client:get_external_event { wf_run_id = "wf", external_event_def_name = DEF,
                                                              guid = "same-guid" }).content)
    assert.equal(1, srv:stats().events)
    assert.equal(1, assert(ob:stats()).duplicates)
  end)

  it("lost replies (stored, then failed): 100 posts, each stored exactly once", function()
    local srv, _, ob = setup { "--store-then-fail-rate", "0.5", "--seed", "3" }
    for i = 1, 100 do assert(ob:post(event("wf", i))) end
    local counts = ob:drain(60)
    assert.equal(0, counts.pending)
    assert.equal(100, counts.delivered + counts.duplicates)
    assert.is_true(counts.duplicates > 10, "only " .. counts.duplicates .. " duplicates")
    assert.is_true(counts.retries >= counts.duplicates)
    local server = srv:stats()
    assert.equal(100, server.events)
    assert.equal(counts.duplicates, server.store_then_failed)
  end)

  it("delivers records stored as blocks exactly once through failures and lost replies", function()
    -- posts queued together are stored several to a row (blocks); a block delivered whole is
    -- one outcome, and a block with any other outcome becomes records of their own first
    local srv, client, ob, path = setup { "--fail-rate", "0.2", "--store-then-fail-rate", "0.2", "--seed", "5" }
    assert(ob:stats())
    sh.hold_sqlite_lock(path:match("^(.*)/"), path, 1) -- the posts queue meanwhile: one transaction
    local jobs, guids = {}, {}
    for i = 1, 300 do jobs[i], guids[i] = ob:post_async(event("wf-" .. (i % 3), { n = i })) end
    for i = 1, 300 do assert.equal(guids[i], jobs[i]:wait(30)) end
    local in_blocks = tonumber(sh.sqlite(path, "SELECT coalesce(sum(n), 0) FROM blocks"))
    assert.is_true(in_blocks >= 293, "only " .. in_blocks .. " records in blocks")
    local counts = ob:drain(60)
    assert.equal(0, counts.pending)
    assert.equal(300, counts.delivered + counts.duplicates)
    assert.is_true(counts.retries > 0 and counts.duplicates > 0)
    local server = srv:stats()
    assert.equal(300, server.events)
    assert.equal(counts.duplicates, server.store_then_failed)
    for i, guid in ipairs(guids) do
      local ev = assert(client:get_external_event { wf_run_id = "wf-" .. (i % 3), external_event_def_name = DEF,
                                                    guid = guid })
      assert.equal(i, ev.content.n)
    end
    assert.equal("0\n", sh.sqlite(path, "SELECT count(*) FROM blocks"))
    local st = assert(ob:stats())
    assert.same({ 300, 0, 0 }, { st.delivered + st.duplicates, st.pending, st.bytes })
  end)

  it("backs off while the server is down and delivers once it is back", function()
    local srv, _, ob = setup()
    srv:kill("KILL")
    for i = 1, 5 do assert(ob:post(event("wf", i))) end
    local counts = ob:drain(0.5)
    assert.equal(0, counts.delivered)
    assert.equal(5, counts.pending)
    assert.is_true(counts.retries >= 5)
    local st = assert(ob:stats())
    assert.equal(5, st.pending)
    assert.is_true(st.oldest_pending_age > 0)
    local p = assert(ob:pending())
    assert.equal("UNAVAILABLE", p[1].last_code)
    assert.is_true(p[1].attempts >= 1)
    srv:restart()
    counts = ob:drain(30)
    assert.same({ 5, 0 }, { counts.delivered, counts.pending })
    assert.equal(5, srv:stats().events)
  end)

  it("waits the server's RetryInfo delay, not its own shorter backoff", function()
    local srv, _, ob = setup { "--exhaust-next", "1", "--retry-after-ms", "400" }
    assert(ob:post(event("wf", 1)))
    local t0 = core.now()
    local counts = ob:drain(30)
    local took = core.now() - t0
    assert.same({ 1, 1, 0 }, { counts.delivered, counts.retries, counts.pending })
    assert.is_true(took >= 0.4, string.format("delivered after %.3f s", took))
    assert.equal(1, srv:stats().events)
  end)

  it("turns rejected records into dead letters: listed, inspected, requeued, purged", function()
    local srv, client, ob = setup()
    local bad = assert(ob:post { wf_run_id = "wf", external_event_def_name = "no-such-def", content = 1 })
    local bad2 = assert(ob:post { wf_run_id = "wf", external_event_def_name = "no-such-def", content = 2 })
    assert(ob:post(event("wf", 3)))
    local counts = ob:drain(30)
    assert.same({ 1, 2, 0 }, { counts.delivered, counts.dead, counts.pending })
    local dead = assert(ob:dead_letters { requests = true })
    assert.equal(2, #dead)
    assert.same({ bad, bad2 }, { dead[1].guid, dead[2].guid })
    assert.equal("INVALID_ARGUMENT", dead[1].last_code)
    assert.matches("no%-such%-def", dead[1].last_message)
    assert.equal("rejected", dead[1].reason)
    assert.equal("string", type(dead[1].request))
    local st = assert(ob:stats())
    assert.same({ 2, 2, 0 }, { st.dead, st.dead_letters, st.pending })
    -- the def appears: requeued, the first is delivered with its own guid
    assert(client:put_external_event_def("no-such-def"))
    assert.equal(1, ob:requeue { dead[1].id })
    counts = ob:drain(30)
    assert.same({ 1, 0 }, { counts.delivered, counts.pending })
    assert(client:get_external_event { wf_run_id = "wf", external_event_def_name = "no-such-def", guid = bad })
    assert.equal(1, ob:purge("all"))
    st = assert(ob:stats())
    assert.same({ 0, 0 }, { st.dead_letters, st.pending })
    assert.equal(2, srv:stats().events)
  end)

  it("refuses posts past max_rows or max_bytes with a clear error, and stores nothing of them", function()
    local _, _, ob = setup(nil, { max_rows = 2 })
    assert(ob:post(event("wf", 1)))
    assert(ob:post(event("wf", 2)))
    local guid, err, code = ob:post(event("wf", 3, "third"))
    assert.is_nil(guid)
    assert.equal("RESOURCE_EXHAUSTED", code)
    assert.matches("full", tostring(err))
    assert.equal("third", err.guid)
    assert.same({ 2, 2 }, { ob:stats().accepted, ob:stats().pending })
    -- delivered records make room again
    ob:drain(30)
    assert(ob:post(event("wf", 4)))
  end)

  it("turns records not delivered within max_age into dead letters (reason expired)", function()
    local srv, _, ob = setup(nil, { max_age = 0.3 })
    srv:kill("KILL")
    assert(ob:post(event("wf", 1)))
    local counts = ob:drain(0.2)
    assert.equal(1, counts.pending)
    local deadline = core.now() + 10
    repeat counts = ob:drain(0.1) until counts.pending == 0 or core.now() > deadline
    local dead = assert(ob:dead_letters())
    assert.equal(1, #dead)
    assert.equal("expired", dead[1].reason)
    assert.equal(1, ob:stats().dead)
  end)

  it("keeps each WfRun's order when ordered = true, through failures", function()
    local _, client, ob = setup({ "--fail-rate", "0.4", "--seed", "11" }, { ordered = true, batch = 8 })
    local guids = {}
    for i = 1, 40 do guids[i] = assert(ob:post(event("wf-" .. (i % 2), i))) end
    local counts = ob:drain(60)
    assert.same({ 40, 0 }, { counts.delivered, counts.pending })
    assert.is_true(counts.retries > 0)
    -- by seconds, then nanos (RFC 3339 text does not sort: "…:20Z" and "…:20.5Z" and "…:20.123456Z")
    local function not_after(a, b) return a.seconds < b.seconds or (a.seconds == b.seconds and a.nanos <= b.nanos) end
    local last = {}
    for i, guid in ipairs(guids) do
      local wf = "wf-" .. (i % 2)
      local ev = assert(client:get_external_event { wf_run_id = wf, external_event_def_name = DEF, guid = guid })
      local t = ev.created_at
      assert.is_true(last[wf] == nil or not_after(last[wf], t),
                     string.format("event %d stored before its predecessor (%s, then %s)", i, tostring(last[wf]), tostring(t)))
      last[wf] = t
    end
  end)

  it("claims a WfRun's next record as soon as the one before it is delivered, not a poll_interval later", function()
    -- With ordered = true only the first pending record of each WfRun can be claimed. Its
    -- successor becomes claimable when its outcome is recorded; delivery must claim it then,
    -- not when poll_interval next comes round (a record per poll_interval per WfRun).
    local _, _, ob = setup(nil, { ordered = true, poll_interval = 60 })
    for i = 1, 30 do assert(ob:post(event("wf-" .. (i % 2), i))) end
    local counts = ob:drain(20)
    assert.same({ 30, 0 }, { counts.delivered, counts.pending })
  end)

  it("step() never blocks: a host loop delivers with it, with the server down and up", function()
    local srv, _, ob = setup()
    srv:kill("KILL")
    for i = 1, 20 do assert(ob:post(event("wf", i))) end
    local slowest = 0
    local function steps_until(cond)
      local deadline = core.now() + 30
      while not cond() do
        local t0 = core.now()
        local busy, delay = ob:step()
        slowest = math.max(slowest, core.now() - t0)
        assert.is_true(busy >= 0 and delay >= 0)
        assert(core.now() < deadline, "no progress in 30 s")
        core.sleep(math.min(delay, 0.005))
      end
    end
    steps_until(function() return ob:stats().retries >= 20 end)
    srv:restart()
    steps_until(function() return ob:stats().delivered == 20 end)
    assert.equal(20, srv:stats().events)
    assert.is_true(slowest < 0.5, string.format("a step took %.3f s", slowest))
  end)

  it("claims another process's posts within poll_interval, however late its own calls finish", function()
    -- Replies take 3 s; poll_interval is 4 s. The first claim finds one record, fewer than it
    -- asked for, so the next claim is due 4 s later. The outcome of that record's call,
    -- recorded at about 3 s, must not push the next claim further: the record another process
    -- posts meanwhile (a commit this outbox's watch does not see) is sent at about 4 s and
    -- delivered at about 7 s, not at 10.
    local srv, _, ob, path = setup({ "--delay-ms", "3000" }, { poll_interval = 4, timeout = 10 },
                                   { DEF, "fill-event" })
    assert(ob:post(event("wf", 1)))
    local t0, other_posted, took = core.now(), false, nil
    repeat
      local _, delay = ob:step()
      local now = core.now() - t0
      if not other_posted and now >= 0.5 then
        local out = rt.run(string.format("LUA_PATH=%s LUA_CPATH=%s %s spec/support/outbox_fill.lua %s 1 10 2>&1",
                                         q(package.path), q(package.cpath), rt.lua, q(path)))
        assert.matches("ok g1", out)
        other_posted = true
      end
      if ob:stats().delivered == 2 then took = now end
      assert(now < 30, "not delivered in 30 s")
      core.sleep(math.min(delay, 0.01))
    until took
    assert.equal(2, srv:stats().events)
    assert.is_true(took < 8.5, string.format("the other process's record was delivered %.1f s after the first post", took))
  end)

  it("raises on misuse, naming the option or field and the caller's line", function()
    local dir = tmpdir()
    local ok, err = pcall(lh.outbox, dir .. "/a.db", { max_rowz = 1 })
    assert.is_false(ok)
    assert.matches("outbox_spec.lua:%d+: .*max_rowz.*max_rows", err)
    ok, err = pcall(lh.outbox, dir .. "/a.db", { batch = 0 })
    assert.matches("batch", err)
    local ob = assert(lh.outbox(dir .. "/a.db"))
    ok, err = pcall(ob.post, ob, { wf_run_id = "w", external_event_def_name = DEF, contnet = 1 })
    assert.is_false(ok)
    assert.matches("outbox_spec.lua:%d+: .*contnet", err)
    ok, err = pcall(ob.post_event, ob, "w", 7, 1)
    assert.matches("outbox_spec.lua:%d+: bad argument #2 to 'post_event' %(external_event_def_name", err)
    ok, err = pcall(ob.post_event, ob, "w", DEF, 1, { retry = false })
    assert.matches("outbox_spec.lua:%d+: bad argument #4 to 'post_event' %(retry: unknown option", err)
    ok, err = pcall(ob.drain, ob)
    assert.matches("no client to deliver with", err)
    ok, err = pcall(ob.post, {}, event("w", 1))
    assert.matches("littlehorse.outbox expected", err)
    assert.equal(0, ob:stats().accepted)
    assert.matches("^littlehorse.outbox: 0x%x+ %(.*a%.db%)$", tostring(ob))
    ob:close()
    ob:close()
    assert.is_true(ob:is_closed())
    ok, err = pcall(ob.post, ob, event("w", 1))
    assert.matches("outbox_spec.lua:%d+: .*this outbox is closed", err)
  end)

  it("reports files it must not use: nil, err at open, the file left as it was", function()
    local dir = tmpdir()
    local path = dir .. "/bad.db"
    local f = assert(io.open(path, "wb"))
    f:write(string.rep("not a database ", 400))
    f:close()
    local ob, err, code = lh.outbox(path)
    assert.is_nil(ob)
    assert.equal("DATA_LOSS", code)
    assert.matches("bad%.db", tostring(err))
    assert.equal(string.rep("not a database ", 400), sh.read_file(path))
    ob, err = lh.outbox(dir .. "/no/such/dir/a.db")
    assert.is_nil(ob)
    assert.matches("directory exists", tostring(err))
  end)
end)
