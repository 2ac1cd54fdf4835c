-- Async calls: many in flight on one channel, completion by wait(), poll() callbacks and an
-- fd a host loop can watch; cancellation, collection and close while in flight.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local rt = require "runtime"

local DEF = "async-event"

-- The eventfd counter, read from /proc: non-zero means the fd is readable.
local function fd_readable(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local info = f:read("*a")
  f:close()
  return tonumber(info:match("eventfd%-count:%s*(%x+)"), 16) ~= 0
end

describe("async calls", function()
  local srv, slow, client, slow_client
  lazy_setup(function()
    srv, client = devserver.with_client({ defs = { DEF } }, 5)
    slow, slow_client = devserver.with_client({ defs = { DEF }, args = { "--delay-ms", "300" } }, 5)
  end)
  lazy_teardown(function()
    devserver.release(srv, client)
    devserver.release(slow, slow_client)
  end)

  it("returns a handle at once; wait() gives the same results as the sync call", function()
    local h = client:put_external_event_async { wf_run_id = "a1", external_event_def_name = DEF, content = 7 }
    assert.matches("^littlehorse.call: 0x%x+ %(PutExternalEvent, ", tostring(h))
    local ev, err = h:wait()
    assert.is_nil(err)
    assert.equal(7, ev.content)
    assert.is_true(h:done())
    -- results are kept: a second wait returns the same event
    assert.equal(ev, h:wait())
    local bad = client:put_external_event_async { wf_run_id = "a1", external_event_def_name = "nope" }
    local none, e2, code = bad:wait()
    assert.is_nil(none)
    assert.equal("INVALID_ARGUMENT", code)
    assert.equal("No ExternalEventDef named nope", e2.message)
  end)

  it("has async forms of the ExternalEventDef calls too, with the blocking calls' results", function()
    local h = client:put_external_event_def_async { name = "async-def", seconds_after_put = 60 }
    assert.matches("^littlehorse.call: 0x%x+ %(PutExternalEventDef, ", tostring(h))
    local def, err = h:wait()
    assert.is_nil(err)
    assert.equal("async-def", def.id.name)
    local got = assert(client:get_external_event_def_async("async-def"):wait())
    assert.same(client:get_external_event_def("async-def"), got)
    local none, e2, code = client:get_external_event_def_async("no-such-def"):wait()
    assert.is_nil(none)
    assert.equal("NOT_FOUND", code, tostring(e2))
  end)

  it("keeps 200 calls in flight on one client and stores each once", function()
    local handles = {}
    for i = 1, 200 do
      handles[i] = client:put_external_event_async { wf_run_id = "many", external_event_def_name = DEF,
                                                     guid = "m" .. i, content = i }
    end
    for i, h in ipairs(handles) do
      local ev = assert(h:wait())
      assert.equal(i, ev.content)
    end
    for i = 1, 200 do
      local again, _, code = client:put_external_event { wf_run_id = "many", external_event_def_name = DEF, guid = "m" .. i }
      assert.is_nil(again)
      assert.equal("ALREADY_EXISTS", code)
    end
    assert.equal(0, client:in_flight())
  end)

  it("wait(timeout) returns false while the call is still in flight", function()
    local h = slow_client:put_external_event_async { wf_run_id = "a2", external_event_def_name = DEF }
    local t0 = core.now()
    assert.is_false(h:wait(0.05))
    assert.is_false(h:done())
    assert.is_true(core.now() - t0 >= 0.04)
    assert.truthy(h:wait(2))
    assert.is_true(core.now() - t0 >= 0.25)
  end)

  it("delivers results to on_done callbacks from poll(), and signals completions on fd()", function()
    local fd = slow_client:fd()
    assert.is_true(rt.is_int(fd))
    local got = {}
    for i = 1, 20 do
      slow_client:put_external_event_async({ wf_run_id = "cb", external_event_def_name = DEF, guid = "cb" .. i, content = i },
        { on_done = function(ev, err) got[#got + 1] = ev and ev.content or err end })
    end
    collectgarbage() -- handles with callbacks are anchored until delivered
    assert.is_false(fd_readable(fd))
    assert.equal(0, slow_client:poll(0))
    -- a host loop would wait on fd; here we sleep until it is readable
    local t0 = core.now()
    while not fd_readable(fd) and core.now() - t0 < 3 do core.sleep(0.005) end
    assert.is_true(fd_readable(fd))
    local n = 0
    while n < 20 and core.now() - t0 < 5 do n = n + slow_client:poll(1) end
    assert.equal(20, n)
    table.sort(got)
    for i = 1, 20 do assert.equal(i, got[i]) end
    assert.is_false(fd_readable(fd))
  end)

  -- The eventfds this process has open (their fd numbers, as strings).
  local function eventfds()
    local set = {}
    local p = io.popen("ls -l /proc/$PPID/fd 2>/dev/null") -- sh -c: its parent is this process
    for line in p:lines() do
      local fd = line:match(" (%d+) %-> anon_inode:%[eventfd%]")
      if fd then set[fd] = true end
    end
    p:close()
    return set
  end

  it("fd() asked for after calls finished is readable at once, for those calls", function()
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    local h = c:put_external_event_async { wf_run_id = "late-fd", external_event_def_name = DEF, content = 1 }
    local t0 = core.now()
    while not h:done() and core.now() - t0 < 5 do core.sleep(0.002) end -- inline: done() drives
    assert.is_true(h:done())
    local fd = c:fd()
    assert.is_true(fd_readable(fd))
    assert.equal(1, assert(h:wait(0)).content)
    assert.is_false(fd_readable(fd))
    -- and later calls signal it as usual
    local h2 = c:put_external_event_async { wf_run_id = "late-fd", external_event_def_name = DEF, content = 2 }
    t0 = core.now()
    while not fd_readable(fd) and core.now() - t0 < 5 do core.sleep(0.002) end
    assert.is_true(fd_readable(fd))
    assert.equal(2, assert(h2:wait(0)).content)
    assert.is_false(fd_readable(fd))
    c:close()
  end)

  it("a completion thread started without fd() (as under nginx) never signals the eventfd", function()
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    local cc = c._core
    local before = eventfds()
    cc:_completion_thread()
    local efd
    for fd in pairs(eventfds()) do if not before[fd] then efd = fd end end
    assert.is_truthy(efd, "the client's engine made an eventfd")
    local hs = {}
    for i = 1, 5 do hs[i] = c:put_external_event_async { wf_run_id = "no-fd", external_event_def_name = DEF, content = i } end
    local t0 = core.now()
    for _, h in ipairs(hs) do
      while not h:done() and core.now() - t0 < 5 do core.sleep(0.002) end
      assert.is_true(h:done())
    end
    assert.is_false(fd_readable(tonumber(efd))) -- finished, not collected, and nobody asked for the fd
    -- asking for it now makes it readable for those calls
    assert.equal(tonumber(efd), c:fd())
    assert.is_true(fd_readable(tonumber(efd)))
    for i, h in ipairs(hs) do assert.equal(i, assert(h:wait(0)).content) end
    assert.is_false(fd_readable(tonumber(efd)))
    c:close()
  end)

  it("runs 50 delayed calls concurrently, not one after another", function()
    local t0 = core.now()
    local hs = {}
    for i = 1, 50 do hs[i] = slow_client:put_external_event_async { wf_run_id = "conc", external_event_def_name = DEF } end
    for _, h in ipairs(hs) do assert(h:wait()) end
    local elapsed = core.now() - t0
    -- one after another: 15 s; concurrently: about 0.3 s. A third of serial is the line.
    assert.is_true(elapsed < 5, "50 calls of 300 ms took " .. elapsed .. " s")
  end)

  it("cancel() ends a call in flight with CANCELLED", function()
    local h = slow_client:put_external_event_async { wf_run_id = "cx", external_event_def_name = DEF }
    h:cancel()
    local ev, err, code = h:wait(2)
    assert.is_nil(ev)
    assert.equal("CANCELLED", code)
    assert.equal(1, err.status)
  end)

  it("cancels cleanly when handles are garbage collected in flight", function()
    for _ = 1, 100 do slow_client:put_external_event_async { wf_run_id = "gc", external_event_def_name = DEF } end
    collectgarbage()
    collectgarbage()
    local t0 = core.now()
    while slow_client:in_flight() > 0 and core.now() - t0 < 3 do core.sleep(0.01) end
    assert.equal(0, slow_client:in_flight())
    assert(slow_client:put_external_event { wf_run_id = "after-gc", external_event_def_name = DEF })
  end)

  it("without fd(), completes calls on the caller's thread (inline), reaping dropped handles too", function()
    local c = lh.client { host = "127.0.0.1", port = slow.port }
    local hs = {}
    for i = 1, 10 do hs[i] = c:put_external_event_async { wf_run_id = "inline", external_event_def_name = DEF, content = i } end
    for _ = 1, 50 do c:put_external_event_async { wf_run_id = "dropped", external_event_def_name = DEF } end
    collectgarbage()
    for i, h in ipairs(hs) do assert.equal(i, assert(h:wait(3)).content) end
    local t0 = core.now()
    while c:in_flight() > 0 and core.now() - t0 < 3 do core.sleep(0.01) end
    assert.equal(0, c:in_flight())
    c:close()
  end)

  it("close() with calls in flight completes them with CANCELLED, without hanging", function()
    local c = lh.client { host = "127.0.0.1", port = slow.port }
    local hs = {}
    for i = 1, 30 do hs[i] = c:put_external_event_async { wf_run_id = "close", external_event_def_name = DEF } end
    local t0 = core.now()
    c:close()
    assert.is_true(core.now() - t0 < 0.5)
    for _, h in ipairs(hs) do
      local ev, _, code = h:wait(1)
      assert.is_nil(ev)
      assert.equal("CANCELLED", code)
    end
    assert.has_error(function() c:put_external_event_async { wf_run_id = "x", external_event_def_name = DEF } end,
                     "littlehorse: this client is closed")
  end)

  it("checks its options like the sync call", function()
    local ok, msg = pcall(function() return client:put_external_event_async({ wf_run_id = 1 }) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'put_external_event_async' %(wf_run_id: expected a string or a table", msg)
    ok, msg = pcall(function()
      return client:put_external_event_async({ wf_run_id = "w", external_event_def_name = DEF }, { on_done = 1 })
    end)
    assert.is_false(ok)
    assert.matches("on_done: expected a function", msg)
  end)

  describe("on_done callbacks", function()
    local function post(i, opts)
      return client:put_external_event_async({ wf_run_id = "wf-cb", external_event_def_name = DEF, content = i }, opts)
    end
    local function poll_until(pred)
      local deadline = core.now() + 5
      while not pred() and core.now() < deadline do client:poll(0.05) end
      return pred()
    end

    it("still deliver every other call of the batch when one callback raises; poll() then raises that error", function()
      local got = {}
      local n = 20
      for i = 1, n do
        post(i, { on_done = function(ev)
          got[#got + 1] = ev.content
          if ev.content == 7 then error("callback 7 failed", 0) end
        end })
      end
      local errors = {}
      local deadline = core.now() + 5
      while #got < n and core.now() < deadline do
        local ok, err = pcall(client.poll, client, 0.05)
        if not ok then errors[#errors + 1] = err end
      end
      table.sort(got)
      local want = {}
      for i = 1, n do want[i] = i end
      assert.are.same(want, got)
      assert.are.same({ "callback 7 failed" }, errors)
    end)

    it("do not run for a handle closed before poll() delivers it, and its slot is reused", function()
      local ran = {}
      for round = 1, 50 do
        local h = post(round, { on_done = function() ran[round] = true end })
        h:close()
        local kept = post(-round, { on_done = function() ran[-round] = true end })
        assert.truthy(poll_until(function() return ran[-round] end), "round " .. round)
        assert.is_nil(ran[round])
        assert.equal(-round, kept:wait().content) -- settled by poll(): wait() gives the results again
      end
    end)

    it("do not run once wait() took the results, and the handle lets go of its slot", function()
      local ran = 0
      for i = 1, 100 do
        local h = post(i, { on_done = function() ran = ran + 1 end })
        assert.equal(i, h:wait(5).content)
      end
      client:poll(0.2)
      assert.equal(0, ran)
      -- handles still held for poll() (the rest of the table is luaL_ref's free list), in the
      -- anchor table of the C client inside the littlehorse client (white box: not API)
      local anchored = 0
      for _, v in pairs(rt.uservalue(client._core, 2)) do
        if type(v) == "userdata" then anchored = anchored + 1 end
      end
      assert.equal(0, anchored)
    end)

    it("may start calls and poll for them, nested deeper than the spare scratch contexts, each with its own results", function()
      -- Each callback starts the next call with a bigger body, makes a blocking call, and polls
      -- until the next level is done: calls run while 1..8 others of the state are running
      -- (each nested call borrows scratch space the outer ones are still using).
      local depth, seen = 8, {}
      local function level(d)
        return function(ev, err)
          assert(ev, tostring(err))
          local body = {}
          for i = 1, d * 50 do body[i] = d .. ":" .. i end
          seen[d] = ev.content
          if d < depth then
            local done = false
            local next_level = level(d + 1)
            post({ d = d + 1, body = body }, { on_done = function(...) next_level(...); done = true end })
            local sync = assert(client:put_external_event { wf_run_id = "wf-sync-" .. d, external_event_def_name = DEF,
                                                            content = { d = d, body = body } })
            assert.equal(d * 50, #sync.content.body)
            assert.equal(d .. ":" .. d * 50, sync.content.body[d * 50])
            assert.is_true(poll_until(function() return done end), "level " .. (d + 1))
          end
        end
      end
      post({ d = 1, body = {} }, { on_done = level(1) })
      assert.is_true(poll_until(function() return seen[depth] ~= nil end))
      for d = 1, depth do
        assert.equal(d, seen[d].d)
        assert.equal(d == 1 and 0 or (d - 1) * 50, #seen[d].body)
        if d > 1 then assert.equal((d - 1) .. ":" .. (d - 1) * 50, seen[d].body[(d - 1) * 50]) end
      end
    end)

    it("may close another handle of the same batch: its callback then does not run", function()
      local handles, ran = {}, {}
      for i = 1, 10 do
        handles[i] = post(i, { on_done = function()
          ran[i] = true
          for j = 1, 10 do if j ~= i and not ran[j] then handles[j]:close() end end
        end })
      end
      local deadline = core.now() + 5 -- all completed, none delivered yet: then one poll, one batch
      local function all_done()
        for _, h in ipairs(handles) do if not h:done() then return false end end
        return true
      end
      while not all_done() and core.now() < deadline do core.sleep(0.01) end
      assert.is_true(all_done())
      client:poll(0)
      local count = 0
      for _ in pairs(ran) do count = count + 1 end
      assert.equal(1, count)
    end)
  end)
end)

describe("nginx routing (a phase that can yield: calls go async)", function()
  it("returns nil, err, code for a request refused before sending, as the blocking call does", function()
    local resty = require "littlehorse.resty"
    local c = lh.client { host = "127.0.0.1", port = 1, max_send_size = 100 }
    local strategy = resty.strategy
    resty.strategy = "sleep" -- no wake thread in this process; the call is refused before any wait
    _G.ngx = { get_phase = function() return "content" end }
    local ok, ev, err, code = pcall(c.put_external_event, c,
      { wf_run_id = "big", external_event_def_name = DEF, content = string.rep("x", 200) })
    _G.ngx, resty.strategy = nil, strategy
    c:close()
    assert(ok, ev)
    assert.is_nil(ev)
    assert.equal("RESOURCE_EXHAUSTED", code)
    assert.matches("max_send_size", err.message)
  end)
end)
