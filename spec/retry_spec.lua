-- Exactly-once posting: the retry helpers against real dev server processes.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"

local DEF = "payment"

describe("lh.new_guid", function()
  it("gives 32 lowercase hex characters from the OS, with no repeats in 1e6", function()
    local seen, n = {}, 0
    for _ = 1, 1000000 do
      local g = lh.new_guid()
      assert(#g == 32 and not g:find("[^0-9a-f]"), g)
      if seen[g] then error("repeated guid " .. g) end
      seen[g] = true
      n = n + 1
    end
    assert.equal(1000000, n)
  end)
end)

describe("retry policy options", function()
  it("refuses unknown options, bad values, and codes that are never retried", function()
    local p = lh.retry.policy
    assert.has_error(function() p { attempt = 3 } end, "bad retry option attempt: unknown option (did you mean attempts?)")
    assert.has_error(function() p { attempts = 0 } end, "bad retry option attempts: expected an integer >= 1")
    assert.has_error(function() p { deadline = -1 } end, "bad retry option deadline: expected a positive number")
    assert.has_error(function() p { multiplier = 0.5 } end, "bad retry option multiplier: must be >= 1")
    assert.has_error(function() p { sleep = 1 } end, "bad retry option sleep: expected a function")
    assert.has_error(function() p { retry_on = { "INVALID_ARGUMENT" } } end,
      "bad retry option retry_on: INVALID_ARGUMENT is never retried: another attempt cannot change it")
    assert.same({ UNAVAILABLE = true }, p { retry_on = { "UNAVAILABLE" } }.retry_on)
    local d = p(true)
    assert.equal(5, d.attempts)
    assert.is_true(d.retry_on.DEADLINE_EXCEEDED and d.retry_on.ABORTED and d.retry_on.RESOURCE_EXHAUSTED and true)
  end)

  it("sleeps with ngx.sleep only inside OpenResty phases that may yield, never under 1 ms there", function()
    assert.equal(core.sleep, lh.retry.default_sleep())
    local slept = {}
    _G.ngx = { sleep = function(d) slept[#slept + 1] = d end, get_phase = function() return "content" end }
    local sleep = lh.retry.default_sleep()
    for _, d in ipairs { 0, 0.0004, 0.001, 0.25 } do sleep(d) end
    -- ngx.sleep counts whole milliseconds: under 1 ms is ngx.sleep(0), a warning in stock nginx
    assert.same({ 0.001, 0.001, 0.001, 0.25 }, slept)
    _G.ngx.get_phase = function() return "init_worker" end
    assert.equal(core.sleep, lh.retry.default_sleep())
    _G.ngx = nil
  end)
end)

describe("retrying put_external_event", function()
  local srv, client
  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  it("chooses one guid before the first attempt and reports what happened", function()
    local ev, info = client:put_external_event({ wf_run_id = "r1", external_event_def_name = DEF, content = 1 },
                                               { retry = true })
    assert.equal(1, info.attempts)
    assert.is_false(info.duplicate)
    assert.equal(info.guid, ev.id.guid)
    assert.matches("^%x+$", ev.id.guid)
  end)

  it("turns ALREADY_EXISTS into success with the stored event, duplicate = true", function()
    local req = { wf_run_id = "r2", external_event_def_name = DEF, guid = "fixed-guid", content = "first" }
    local first = assert(client:put_external_event(req))
    local again, info = client:put_external_event(req, { retry = true })
    assert.is_true(info.duplicate)
    assert.equal(1, info.attempts)
    assert.equal("first", again.content)
    assert.equal(tostring(first.created_at), tostring(again.created_at))
  end)

  it("never retries INVALID_ARGUMENT", function()
    local calls = 0
    local ev, err, code = client:put_external_event(
      { wf_run_id = "r3", external_event_def_name = "no-such-def" },
      { retry = { on_retry = function() calls = calls + 1 end, sleep = function() end } })
    assert.is_nil(ev)
    assert.equal("INVALID_ARGUMENT", code)
    assert.equal(1, err.attempts)
    assert.equal(0, calls)
  end)

  it("raises misuse before any attempt, naming the method and field", function()
    local ok, msg = pcall(function()
      return client:put_external_event({ wf_run_id = 7, external_event_def_name = DEF }, { retry = true })
    end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'put_external_event' %(wf_run_id: expected a string or a table", msg)
  end)

  it("post_event retries by default and takes the usual optional fields", function()
    local ev, info = client:post_event("r4", DEF, { ok = true }, { thread_run_number = 0, guid = "pe-1" })
    assert.same({ ok = true }, ev.content)
    assert.equal(0, ev.thread_run_number)
    assert.equal("pe-1", ev.id.guid)
    assert.equal(1, info.attempts)
    local again, info2 = client:post_event("r4", DEF, { ok = true }, { guid = "pe-1" })
    assert.is_true(info2.duplicate)
    assert.equal(tostring(ev.created_at), tostring(again.created_at))
    -- retry = false: the plain call, ALREADY_EXISTS comes back as an error
    local none, _, code = client:post_event("r4", DEF, { ok = true }, { guid = "pe-1", retry = false })
    assert.is_nil(none)
    assert.equal("ALREADY_EXISTS", code)
  end)

  it("gives up at once on a server that is gone when attempts run out, with backoff between", function()
    local dead = devserver.start()
    local port = dead.port
    dead:stop()
    local c = lh.client { host = "127.0.0.1", port = port, timeout = 1 }
    local seen, delays = {}, {}
    local ev, err, code = c:put_external_event({ wf_run_id = "r5", external_event_def_name = DEF }, {
      retry = { attempts = 4, initial_backoff = 0.01, max_backoff = 0.02,
                sleep = function(d) delays[#delays + 1] = d end,
                on_retry = function(e, attempt) seen[#seen + 1] = e.code .. "#" .. attempt end } })
    assert.is_nil(ev)
    assert.equal("UNAVAILABLE", code)
    assert.equal(4, err.attempts)
    assert.same({ "UNAVAILABLE#1", "UNAVAILABLE#2", "UNAVAILABLE#3" }, seen)
    assert.equal(3, #delays)
    for i, d in ipairs(delays) do assert.is_true(d >= 0 and d <= math.min(0.02, 0.01 * 2 ^ (i - 1)) + 1e-9) end
    c:close()
  end)

  it("keeps the overall deadline, sleeps included", function()
    local dead = devserver.start()
    local port = dead.port
    dead:stop()
    local c = lh.client { host = "127.0.0.1", port = port, timeout = 1 }
    local t0 = core.now()
    local ev, err = c:put_external_event({ wf_run_id = "r6", external_event_def_name = DEF },
      { retry = { attempts = 1000, initial_backoff = 0.05, max_backoff = 0.05, deadline = 0.5 } })
    local elapsed = core.now() - t0
    assert.is_nil(ev)
    assert.is_true(err.attempts > 1)
    -- Ignoring the deadline would mean 1000 attempts and up to 50 s of sleeps; the exact rule
    -- (no sleep or attempt past it) is checked on a fake clock below, free of scheduling noise.
    assert.is_true(elapsed < 0.5 + 0.5, "took " .. elapsed)
    c:close()
  end)

  it("never sleeps or waits past the deadline (on a fake clock: each attempt takes 10 ms)", function()
    local clock, real_now = 1000, core.now
    local deadline = clock + 0.5
    local events = {}
    -- the client's retry loop (littlehorse.retry, not API), driven here with a fake attempt
    local retry = require "littlehorse.retry"
    local function put(_, opts)
      -- an attempt may wait at most until the deadline (0.001 s is the floor of a timeout)
      events[#events + 1] = { "attempt", clock, opts.timeout }
      clock = clock + 0.01
      return nil, {}, "UNAVAILABLE"
    end
    core.now = function() return clock end
    local ok, e = pcall(function()
      for _, backoff in ipairs { 0.05, 0.13, 0.3 } do
        clock, events = 1000, {}
        local ev, err = retry.put(put, nil, { wf_run_id = "w", external_event_def_name = DEF }, {},
          { attempts = 1000, initial_backoff = backoff, max_backoff = backoff, deadline = 0.5,
            sleep = function(d) events[#events + 1] = { "sleep", clock, d }; clock = clock + d end }, 5)
        assert.is_nil(ev)
        assert.is_true(err.attempts >= 2, "attempts " .. err.attempts)
        for _, ev_ in ipairs(events) do
          local kind, at, d = ev_[1], ev_[2], ev_[3]
          assert.is_true(at < deadline, kind .. " started at +" .. (at - 1000))
          if kind == "sleep" then assert.is_true(at + d < deadline, "a sleep ends past the deadline") end
          if kind == "attempt" then assert.is_true(at + d <= deadline + 0.001 + 1e-9, "an attempt may wait past the deadline") end
        end
      end
    end)
    core.now = real_now
    assert(ok, e)
  end)
end)
