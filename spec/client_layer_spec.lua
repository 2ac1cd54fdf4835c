-- The littlehorse client as one Lua layer over the C client: littlehorse.core clients keep
-- their behaviour, blocking and async calls share the token refresh, in_flight() counts every
-- callback still to deliver, call options are read raw (as the C side reads them), a request
-- refused before sending is never retried, and
-- UNAVAILABLE / DEADLINE_EXCEEDED errors name the target.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local rt = require "runtime"

local DEF = "layer"

local function req(wf, content)
  return { wf_run_id = wf, external_event_def_name = DEF, content = content }
end

describe("littlehorse.core clients", function()
  it("do not change when littlehorse is required", function()
    -- a fresh Lua state: core alone first, then littlehorse
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format("package.path = %q; package.cpath = %q\n", package.path, package.cpath), [[
      local core = require "littlehorse.core"
      local c = core.client { target = "127.0.0.1:1", timeout = 1, max_send_size = 1024 }
      local methods = getmetatable(c).__index
      local before, n = {}, 0
      for k, v in pairs(methods) do before[k] = v; n = n + 1 end
      local lh = require "littlehorse"
      lh.client { port = 1 }:close()
      local changed = {}
      for k, v in pairs(methods) do if before[k] ~= v then changed[#changed + 1] = k end end
      for k in pairs(before) do if methods[k] == nil then changed[#changed + 1] = k end end
      table.sort(changed)
      io.write(n, " methods; changed: ", table.concat(changed, " "), "; post_event: ", tostring(c.post_event), "\n")
      c:close()
    ]])
    f:close()
    local p = io.popen(rt.lua .. " " .. script .. " 2>&1")
    local out = p:read("*a")
    p:close()
    os.remove(script)
    assert.matches("^%d+ methods; changed: ; post_event: nil\n$", out)
  end)
end)

describe("a client with a token", function()
  local srv
  lazy_setup(function() srv = devserver.start { defs = { DEF }, args = { "--require-token", "good-token" } } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  -- A client whose token function first returns a token the server refuses, then the good
  -- one (both cached for an hour, so only an UNAUTHENTICATED answer makes it fetch again).
  local function stale_then_good()
    local fetched = 0
    local c = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, token = function()
      fetched = fetched + 1
      return fetched == 1 and "stale-token" or "good-token", 3600
    end }
    return c, function() return fetched end
  end

  it("refreshes the token once on UNAUTHENTICATED in a blocking call", function()
    local c, fetched = stale_then_good()
    local ev, err = c:put_external_event(req("tok-sync", 1))
    assert.is_nil(err)
    assert.equal(1, ev.content)
    assert.equal(2, fetched())
    c:close()
  end)

  it("refreshes it once for an async call too: wait() gives the second call's results", function()
    local c, fetched = stale_then_good()
    local h = c:put_external_event_async(req("tok-async", 2))
    local ev, err = h:wait(5)
    assert.is_nil(err)
    assert.equal(2, ev.content)
    assert.equal(2, fetched())
    -- then the fresh token is used at once
    assert.equal(3, assert(c:put_external_event_async(req("tok-async", 3)):wait(5)).content)
    assert.equal(2, fetched())
    c:close()
  end)

  it("refreshes it once for an async call polled with done()", function()
    local c, fetched = stale_then_good()
    local h = c:get_external_event_def_async(DEF)
    local deadline = core.now() + 5
    while not h:done() and core.now() < deadline do core.sleep(0.005) end
    assert.is_true(h:done())
    local def, err = h:wait(0)
    assert.is_nil(err)
    assert.equal(DEF, def.id.name)
    assert.equal(2, fetched())
    c:close()
  end)

  it("refreshes it once for an async call with on_done, inside poll()", function()
    local c, fetched = stale_then_good()
    local got = {}
    for i = 1, 5 do
      c:put_external_event_async(req("tok-cb", i), { on_done = function(ev, err)
        got[#got + 1] = ev and tostring(ev.content) or err.code
      end })
    end
    local deadline = core.now() + 10
    while c:in_flight() > 0 and core.now() < deadline do c:poll(0.05) end
    table.sort(got)
    assert.same({ "1", "2", "3", "4", "5" }, got)
    c:close()
    -- several calls may have been refused with the stale token; each was sent once more
    assert.is_true(fetched() >= 2)
  end)

  it("refreshes only once: a second UNAUTHENTICATED is the result", function()
    local fetched = 0
    local c = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5,
                          token = function() fetched = fetched + 1; return "bad-" .. fetched, 3600 end }
    local before = srv:stats().calls
    local ev, _, code = c:put_external_event_async(req("tok-bad", 1)):wait(5)
    assert.is_nil(ev)
    assert.equal("UNAUTHENTICATED", code)
    assert.equal(2, fetched)
    local delivered
    c:put_external_event_async(req("tok-bad", 2), { on_done = function(_, _, cb_code) delivered = cb_code end })
    while c:in_flight() > 0 do c:poll(0.05) end
    assert.equal("UNAUTHENTICATED", delivered)
    assert.equal(3, fetched) -- the cached bad-2, then bad-3
    assert.equal(before + 4, srv:stats().calls)
    c:close()
  end)

  -- Call options are read raw by the C side; the Lua layer must not see more than it does
  -- (a client with a token copies and wraps the options before the C call).
  it("reads call options raw, as a client without a token does: retry and on_done behind __index are not seen", function()
    local c = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, token = "good-token" }
    local reads = 0
    local opts = setmetatable({}, { __index = function(_, k)
      reads = reads + 1
      if k == "retry" then return { attempts = "many" } end -- a bad retry option: would raise
      if k == "on_done" then return function() error("an on_done behind __index ran") end end
    end })
    assert.equal(1, assert(c:put_external_event(req("tok-raw", 1), opts)).content)
    local h = assert(c:put_external_event_async(req("tok-raw", 2), opts))
    assert.equal(2, assert(h:wait(5)).content)
    assert.is_true(h:done())
    assert.equal(0, c:poll(0)) -- nothing left to deliver: no callback was attached
    assert.equal(0, reads)
    c:close()
  end)

  it("returns handles with the methods of a littlehorse.call handle", function()
    local c = lh.client { host = "127.0.0.1", port = srv.port, token = "good-token" }
    local h = c:put_external_event_async(req("tok-methods", 1))
    local c_methods = debug.getregistry()["littlehorse.call"].__index
    for name in pairs(c_methods) do assert.is_function(h[name], name) end
    assert.is_number(h:id())
    assert.matches("^littlehorse%.call: ", tostring(h))
    assert(h:wait(5))
    assert.is_nil(h:id())
    h:close()
    assert.is_true(h:done())
    -- cancel: CANCELLED, not sent again
    local slow = devserver.start { defs = { DEF }, args = { "--require-token", "good-token", "--delay-ms", "2000" } }
    local s = lh.client { host = "127.0.0.1", port = slow.port, token = "good-token" }
    local hc = s:put_external_event_async(req("tok-cancel", 1))
    hc:cancel()
    assert.equal("CANCELLED", select(3, hc:wait(5)))
    s:close()
    slow:stop()
    c:close()
  end)
end)

describe("in_flight()", function()
  local slow
  lazy_setup(function() slow = devserver.start { defs = { DEF }, args = { "--delay-ms", "100" } } end)
  lazy_teardown(function() if slow then slow:stop() end end)

  it("counts calls whose on_done has not run yet, so polling until it is 0 delivers every callback", function()
    local c = lh.client { host = "127.0.0.1", port = slow.port, timeout = 5 }
    local handles, got = {}, {}
    for i = 1, 20 do
      handles[i] = c:put_external_event_async(req("if-" .. i, i), { on_done = function(ev) got[#got + 1] = ev.content end })
    end
    -- every call finishes before anyone polls: they are still counted
    local deadline = core.now() + 5
    local function all_done()
      for _, h in ipairs(handles) do if not h:done() then return false end end
      return true
    end
    while not all_done() and core.now() < deadline do core.sleep(0.01) end
    assert.is_true(all_done())
    assert.equal(20, c:in_flight())
    while c:in_flight() > 0 do c:poll(0) end
    assert.equal(20, #got)
    c:close()
  end)

  it("counts a finished call without a callback until wait() or poll() collects it", function()
    local c = lh.client { host = "127.0.0.1", port = slow.port, timeout = 5 }
    local h = c:put_external_event_async(req("if-wait", 1))
    local deadline = core.now() + 5
    while not h:done() and core.now() < deadline do core.sleep(0.01) end
    assert.equal(1, c:in_flight())
    assert(h:wait())
    assert.equal(0, c:in_flight())
    c:close()
  end)
end)

describe("a request refused before sending (over max_send_size)", function()
  local srv
  lazy_setup(function() srv = devserver.start { defs = { DEF } } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("is never retried, and says nothing was sent", function()
    local c = lh.client { host = "127.0.0.1", port = srv.port, max_send_size = 100 }
    local sleeps = 0
    local big = req("too-big", string.rep("x", 200))
    local before = srv:stats().calls
    local ev, err, code = c:put_external_event(big, { retry = { attempts = 5, sleep = function() sleeps = sleeps + 1 end } })
    assert.is_nil(ev)
    assert.equal("RESOURCE_EXHAUSTED", code)
    assert.equal(1, err.attempts)
    assert.is_false(err.sent)
    assert.matches("nothing was sent", err.message)
    assert.equal(0, sleeps)
    ev, err = c:post_event("too-big", DEF, string.rep("x", 200))
    assert.is_nil(ev)
    assert.equal(1, err.attempts)
    -- async: refused with the same error, no handle
    local h, aerr, acode = c:put_external_event_async(big)
    assert.is_nil(h)
    assert.equal("RESOURCE_EXHAUSTED", acode)
    assert.is_false(aerr.sent)
    assert.equal(before, srv:stats().calls)
    -- (a RESOURCE_EXHAUSTED from the server is retried: spec/faults_spec.lua)
    assert.equal(1, assert(c:put_external_event(req("small", 1), { retry = true })).content)
    c:close()
  end)
end)

describe("UNAVAILABLE and DEADLINE_EXCEEDED", function()
  it("name the target, blocking and async", function()
    local gone = devserver.start()
    local port = gone.port
    gone:stop()
    local c = lh.client { host = "127.0.0.1", port = port, timeout = 2 }
    local ev, err, code = c:put_external_event(req("t", 1))
    assert.is_nil(ev)
    assert.equal("UNAVAILABLE", code)
    assert.equal("127.0.0.1:" .. port, err.target)
    assert.matches("%(target 127%.0%.0%.1:" .. port .. "%)$", tostring(err))
    local _, aerr = c:get_external_event_def_async(DEF):wait(5)
    assert.equal("127.0.0.1:" .. port, aerr.target)
    c:close()

    local slow = devserver.start { defs = { DEF }, args = { "--delay-ms", "1000" } }
    local s = lh.client { target = "ipv4:127.0.0.1:" .. slow.port, timeout = 0.05 }
    ev, err, code = s:put_external_event(req("t", 2))
    assert.equal("DEADLINE_EXCEEDED", code)
    assert.equal("ipv4:127.0.0.1:" .. slow.port, err.target)
    assert.matches("^PutExternalEvent: DEADLINE_EXCEEDED %(4%): .* %(target ipv4:127%.0%.0%.1:" .. slow.port .. "%)$", tostring(err))
    s:close()
    slow:stop()
  end)

  it("other errors are the server's answer and carry no target", function()
    local srv = devserver.start()
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    local _, err, code = c:put_external_event(req("t", 1))
    assert.equal("INVALID_ARGUMENT", code)
    assert.is_nil(err.target)
    assert.equal("PutExternalEvent: INVALID_ARGUMENT (3): No ExternalEventDef named layer", tostring(err))
    c:close()
    srv:stop()
  end)
end)
