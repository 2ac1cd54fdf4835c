-- Exactly-once posting through the retry helpers, against real dev-server
-- processes that inject faults (lost replies, crashes with a persistent store, quota errors
-- with RetryInfo, slow replies, dropped connections).
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local probe = require "probe"
local sh = require "sh"
local rt = require "runtime"

local DEF = "payment"

local q = sh.q

local function client_for(srv, timeout)
  return lh.client { host = "127.0.0.1", port = srv.port, timeout = timeout or 5 }
end

local function no_sleep() end

local defer = require "cleanup" (function(f) finally(f) end) -- run fn when the test ends

-- Everything started in a test is stopped in `finally`, also when the test fails.
local function with_server(opts)
  local srv, c = devserver.with_client(opts, opts.timeout)
  defer(function() devserver.release(srv, c) end)
  return srv, c
end

describe("lost replies (--store-then-fail on every call)", function()
  it("100 posts through the helper leave exactly 100 events, each stored once and returned", function()
    local srv, c = with_server { defs = { DEF }, args = { "--store-then-fail", "1000000" } }
    local returned = {}
    for i = 1, 100 do
      local seen = {}
      local ev, info = c:post_event("order-" .. (i % 7), DEF, { n = i }, {
        retry = { sleep = no_sleep, on_retry = function(err) seen[#seen + 1] = err.code end } })
      assert(ev, "post " .. i .. " failed")
      -- attempt 1 stored the event and lost the reply; attempt 2 got ALREADY_EXISTS and the
      -- helper fetched the stored event
      assert.same({ "UNAVAILABLE" }, seen)
      assert.equal(2, info.attempts)
      assert.is_true(info.duplicate)
      assert.equal(info.guid, ev.id.guid)
      assert.equal(i, ev.content.n)
      returned[i] = ev
    end
    local st = srv:stats()
    assert.equal(100, st.events)            -- nothing stored twice (a new guid per attempt would make 200)
    assert.equal(100, st.store_then_failed) -- every first attempt really stored and failed
    assert.equal(200, st.put_event)

    -- each one is stored once, under its guid, and is exactly what the call returned
    for i, ev in ipairs(returned) do
      local got = assert(c:get_external_event(ev.id))
      assert.equal(tostring(ev.created_at), tostring(got.created_at))
      assert.equal(i, got.content.n)
      local again, _, code = c:put_external_event { wf_run_id = ev.id.wf_run_id.id, external_event_def_name = DEF,
                                                   guid = ev.id.guid, content = { n = -1 } }
      assert.is_nil(again)
      assert.equal("ALREADY_EXISTS", code)
    end
    assert.equal(100, srv:stats().events)
  end)

  it("mixed faults at random (fail before / after storing): 200 posts, each stored exactly once", function()
    local srv, c = with_server { defs = { DEF }, args = { "--fail-rate", "0.2", "--store-then-fail-rate", "0.3",
                                                         "--seed", "7" } }
    local attempts, dups = 0, 0
    for i = 1, 200 do
      local ev, info = c:post_event("mixed", DEF, i, { guid = "mixed-" .. i,
        retry = { attempts = 50, sleep = no_sleep } })
      assert(ev, "post " .. i .. " failed")
      assert.equal(i, ev.content)
      attempts = attempts + info.attempts
      if info.duplicate then dups = dups + 1 end
    end
    local st = srv:stats()
    assert.equal(200, st.events)
    assert.is_true(st.failed > 0 and st.store_then_failed > 0)
    assert.equal(st.store_then_failed, dups) -- every lost reply was recovered via ALREADY_EXISTS
    assert.equal(attempts, st.put_event)
  end)
end)

describe("a persistent store across kill -9 (--store FILE)", function()
  it("a post loop survives three SIGKILL + restarts on the same port; none lost, none stored twice", function()
    local file = os.tmpname()
    os.remove(file)
    -- every reply is held back 80 ms (the store is synced before that), so a kill usually lands
    -- after an event was stored and before its reply: the lost-reply case across a crash
    local srv = devserver.start { defs = { DEF }, args = { "--store", file, "--delay-ms", "80" } }
    local c = client_for(srv, 2)
    defer(function()
      c:close()
      srv:stop()
      os.remove(file)
    end)

    local restarts = 0
    -- The helper's sleep doubles as the supervisor: a dead server is brought back.
    local function sleep(d)
      if not srv:alive() then
        srv:kill("KILL") -- reaped: port and store file are free
        srv:restart()
        restarts = restarts + 1
      end
      core.sleep(d)
    end
    local posted, codes, dups = {}, {}, 0
    local n = 0
    for round = 1, 3 do
      -- a separate process kills the server at a moment the loop does not choose
      local sh = io.popen(string.format("(sleep %.2f; kill -KILL %d) >/dev/null 2>&1 & echo $!",
                                        0.25 + 0.07 * round, srv.pid))
      local killer = sh:read("*l")
      sh:close()
      defer(function() rt.execute("kill -TERM " .. killer .. " 2>/dev/null") end) -- if we fail first
      local until_t = core.now() + 0.6
      while core.now() < until_t or restarts < round do
        n = n + 1
        local ev, info = c:post_event("crash-wf", DEF, { n = n }, { guid = "crash-" .. n, retry = {
          attempts = 1000, deadline = 20, initial_backoff = 0.02, max_backoff = 0.1, sleep = sleep,
          on_retry = function(err) codes[err.code] = (codes[err.code] or 0) + 1 end } })
        assert(ev, "post " .. n .. " failed: " .. tostring(info))
        assert.equal("crash-" .. n, ev.id.guid)
        assert.equal(n, ev.content.n)
        if info.duplicate then dups = dups + 1 end
        posted[n] = tostring(ev.created_at)
      end
    end
    assert.equal(3, restarts)
    assert.is_true((codes.UNAVAILABLE or 0) > 0, "the posts saw the server down")
    assert.is_true(dups >= 1, "no kill hit a stored-but-unanswered event")

    local st = srv:stats()
    assert.equal(n, st.events)          -- every acknowledged event survived, none twice
    assert.equal(1, st.defs)
    assert.is_true(st.store_replayed > 0)
    assert.equal(n + 1, st.store_records) -- one record per event plus the def: no duplicate records
    for i = 1, n do
      local got = assert(c:get_external_event { wf_run_id = "crash-wf", external_event_def_name = DEF,
                                                guid = "crash-" .. i })
      assert.equal(posted[i], tostring(got.created_at)) -- what the caller got is what is stored
    end
  end)

  it("keeps events and defs over a clean restart, cuts a torn tail, and refuses a second server", function()
    local file = os.tmpname()
    os.remove(file)
    local srv = devserver.start { args = { "--store", file } }
    local c = client_for(srv)
    defer(function()
      c:close()
      srv:stop()
      os.remove(file)
    end)
    assert(c:put_external_event_def("kept-def"))
    local ev = assert(c:put_external_event { wf_run_id = "w", external_event_def_name = "kept-def", guid = "g1",
                                              content = "one" })
    -- a second server on the same file is refused while the first runs
    local ok, err = pcall(devserver.start, { args = { "--store", file } })
    assert.is_false(ok)
    assert.matches("in use by another process", err)

    srv:stop()
    -- a crash in the middle of a record: garbage at the end of the file
    local f = assert(io.open(file, "ab"))
    f:write("\37\0\0\0garbage")
    f:close()
    srv:restart()
    assert.matches("dropping 11 bytes", srv:log())
    local got = assert(c:get_external_event { wf_run_id = "w", external_event_def_name = "kept-def", guid = "g1" })
    assert.equal(tostring(ev.created_at), tostring(got.created_at))
    assert.equal("one", got.content)
    assert(c:put_external_event { wf_run_id = "w", external_event_def_name = "kept-def", guid = "g2" })
    srv:kill("KILL")
    srv:restart()
    local st = srv:stats()
    assert.equal(2, st.events)
    assert.equal(1, st.defs)
  end)
end)

describe("retry behaviour against injected faults", function()
  it("never retries INVALID_ARGUMENT: one call reaches the server", function()
    local srv, c = with_server { defs = { DEF }, args = { "--fail-next", "3", "--fail-code", "INVALID_ARGUMENT" } }
    local retries = 0
    local ev, err, code = c:post_event("w", DEF, 1, { retry = { on_retry = function() retries = retries + 1 end,
                                                               sleep = no_sleep } })
    assert.is_nil(ev)
    assert.equal("INVALID_ARGUMENT", code)
    assert.equal(1, err.attempts)
    assert.equal(0, retries)
    local st = srv:stats()
    assert.equal(1, st.put_event)
    assert.equal(0, st.events)
  end)

  it("--fail-next 3 with UNAVAILABLE, then success: attempts = 4, on_retry sees each error", function()
    local srv, c = with_server { defs = { DEF }, args = { "--fail-next", "3", "--fail-code", "14",
                                                         "--fail-message", "try again" } }
    local seen = {}
    local ev, info = c:post_event("w", DEF, "x", { retry = {
      sleep = no_sleep,
      on_retry = function(err, attempt, delay)
        seen[#seen + 1] = string.format("%d:%s:%s", attempt, err.code, err.message)
        assert.is_true(delay >= 0 and delay <= 0.1 * 2 ^ (attempt - 1))
      end } })
    assert(ev)
    assert.equal(4, info.attempts)
    assert.is_false(info.duplicate)
    assert.same({ "1:UNAVAILABLE:try again", "2:UNAVAILABLE:try again", "3:UNAVAILABLE:try again" }, seen)
    local st = srv:stats()
    assert.equal(3, st.failed)
    assert.equal(1, st.events)
  end)

  it("honours the server's RetryInfo delay (RESOURCE_EXHAUSTED), measured", function()
    local _, c = with_server { defs = { DEF }, args = { "--exhaust-next", "2", "--retry-after-ms", "300" } }
    local delays, errs = {}, {}
    local t0 = core.now()
    local ev, info = c:post_event("w", DEF, 1, { retry = {
      initial_backoff = 0.01, max_backoff = 0.01, -- jittered backoff alone would be <= 10 ms
      sleep = function(d) delays[#delays + 1] = d; core.sleep(d) end,
      on_retry = function(err) errs[#errs + 1] = err end } })
    local elapsed = core.now() - t0
    assert(ev)
    assert.equal(3, info.attempts)
    assert.same({ 0.3, 0.3 }, delays) -- exactly the server's delay, not the backoff
    assert.equal(2, #errs)
    for _, e in ipairs(errs) do
      assert.equal("RESOURCE_EXHAUSTED", e.code)
      assert.equal("Quota exceeded. Retry after 300ms.", e.message)
      assert.equal(0.3, e.retry_delay)
    end
    -- two sleeps really happened; and far less than the 2 s that the default 1 s delay would
    -- take (the delays themselves are checked exactly above)
    assert.is_true(elapsed >= 0.6 and elapsed < 1.5, "took " .. elapsed)
  end)

  it("keeps the overall deadline when every reply is slower than the per-attempt timeout", function()
    local srv, c = with_server { defs = { DEF }, args = { "--delay-ms", "2000" } }
    local seen = {}
    local t0 = core.now()
    -- Attempts start at about 0, 0.45 and 0.9 s; the third may wait only until the deadline. An
    -- attempt allowed its full 0.45 s would end past 1.35 s, a margin no scheduling delay eats.
    local ev, err, code = c:post_event("w", DEF, 1, { retry = {
      deadline = 1, per_attempt_timeout = 0.45, initial_backoff = 0.01, max_backoff = 0.02,
      on_retry = function(e) seen[#seen + 1] = e.code end } })
    local elapsed = core.now() - t0
    assert.is_nil(ev)
    assert.equal("DEADLINE_EXCEEDED", code)
    assert.is_true(err.attempts >= 3, "attempts " .. err.attempts)
    assert.equal(err.attempts - 1, #seen)
    for _, s in ipairs(seen) do assert.equal("DEADLINE_EXCEEDED", s) end
    assert.is_true(elapsed >= 0.9 and elapsed < 1.3, "took " .. elapsed)
    -- the server did store it (only the reply was slow): a later post with that guid finds it
    assert.equal(1, srv:stats().events)
  end)

  it("--drop-next: the connection really drops, the client sees UNAVAILABLE at once, a retry succeeds", function()
    local srv, c = with_server { defs = { DEF }, args = { "--drop-next", "2" } }
    local t0 = core.now()
    local ev, err, code = c:put_external_event { wf_run_id = "w", external_event_def_name = DEF, guid = "d1" }
    assert.is_nil(ev)
    assert.equal("UNAVAILABLE", code, tostring(err))
    assert.is_true(core.now() - t0 < 1, "a dropped call must not hang")
    local seen = {}
    local ev2, info = c:post_event("w", DEF, 2, { guid = "d2", retry = { sleep = no_sleep, attempts = 10,
      on_retry = function(e) seen[#seen + 1] = e.code end } })
    assert(ev2)
    -- Attempt 1 is dropped by the server. With no backoff, the next attempt can start before
    -- gRPC has seen that connection close, and fail on it at once ("Socket closed", "Broken
    -- pipe") without reaching the server; so it can take more than one more attempt.
    assert.is_true(info.attempts >= 2, "attempts " .. info.attempts)
    assert.equal(info.attempts - 1, #seen)
    for _, code in ipairs(seen) do
      assert.is_true(code == "UNAVAILABLE" or code == "INTERNAL", tostring(code))
    end
    local st = srv:stats()
    assert.equal(2, st.dropped) -- exactly the two asked for: the extra attempts never got there
    assert.equal(1, st.events)  -- a dropped call stores nothing
    assert.is_true(st.accepted >= 3, "each drop cost a connection: " .. st.accepted)
  end)

  it("--delay-ms holds 50 concurrent calls at once, not one after another", function()
    local srv = devserver.start { defs = { DEF }, args = { "--delay-ms", "400" } }
    defer(function() srv:stop() end)
    local r = probe.run { target = "127.0.0.1:" .. srv.port, method = "put-event", def = DEF, count = 50,
                          guid = "slow", timeout = 10 }
    assert.equal(50, r.ok)
    for _, call in ipairs(r.calls) do
      assert.is_true(call.ms >= 395 and call.ms < 5000, "call took " .. call.ms .. " ms")
    end
    -- one after another would take 20 s (10 s on two server threads): a quarter of that at most
    assert.is_true(r.wall_ms < 5000, "50 calls took " .. r.wall_ms .. " ms in all (serial: 20 s)")
    -- GetExternalEvent is delayed as well, and the server answers other calls meanwhile
    local c = client_for(srv)
    defer(function() c:close() end)
    local t0 = core.now()
    assert(c:get_external_event { wf_run_id = "probe-wf", external_event_def_name = DEF, guid = "slow-7" })
    assert.is_true(core.now() - t0 >= 0.39)
  end)

  it("--fail-rate draws per call (seeded), and only PutExternalEvent is affected", function()
    local srv, c = with_server { defs = { DEF }, args = { "--fail-rate", "0.3", "--seed", "42",
                                                         "--fail-code", "aborted" } }
    local failed = 0
    for i = 1, 200 do
      local ev, _, code = c:put_external_event { wf_run_id = "r", external_event_def_name = DEF, guid = "r" .. i }
      if not ev then
        assert.equal("ABORTED", code)
        failed = failed + 1
      end
    end
    assert.is_true(failed >= 30 and failed <= 90, failed .. " of 200 failed at p = 0.3")
    for _ = 1, 20 do assert(c:get_external_event_def(DEF)) end
    local st = srv:stats()
    assert.equal(failed, st.failed)
    assert.equal(200 - failed, st.events)
  end)

  it("refuses bad fault options with exit code 2 and a message", function()
    local function run(args)
      local out = os.tmpname()
      local r1, _, code = rt.execute("./build/lh-devserver --port 0 " .. args .. " >" .. q(out) .. " 2>&1")
      local f = io.open(out)
      local msg = f:read("*a")
      f:close()
      os.remove(out)
      return (r1 == true or r1 == 0) and 0 or code, msg
    end
    local code, msg = run("--fail-code OK")
    assert.equal(2, code)
    assert.matches("bad %-%-fail%-code 'OK'", msg)
    code, msg = run("--fail-rate 1.5")
    assert.equal(2, code)
    assert.matches("bad %-%-fail%-rate", msg)
    code, msg = run("--store /nonexistent-dir/x.log")
    assert.equal(1, code)
    assert.matches("%-%-store /nonexistent%-dir/x.log: cannot open", msg)
  end)
end)

describe("connection counting (STATS accepted/open)", function()
  it("counts every accepted connection; many calls on one channel are one connection", function()
    local srv = devserver.start { defs = { DEF } }
    defer(function() srv:stop() end)
    local st0 = srv:stats()
    assert.equal(0, st0.accepted)
    local r = probe.run { target = "127.0.0.1:" .. srv.port, def = DEF, count = 40 }
    assert.equal(40, r.ok)
    probe.run { target = "127.0.0.1:" .. srv.port, def = DEF }
    local st = srv:stats()
    assert.equal(2, st.accepted)
    assert.equal(41, st.get_def)
    -- both probe processes are gone; the server closes their connections when it reads the end
    local t0 = core.now()
    while st.open ~= 0 and core.now() - t0 < 10 do
      core.sleep(0.01)
      st = srv:stats()
    end
    assert.equal(0, st.open)
    local c = client_for(srv)
    assert(c:get_external_event_def(DEF))
    st = srv:stats()
    assert.equal(3, st.accepted)
    assert.equal(1, st.open)
    c:close()
  end)
end)
