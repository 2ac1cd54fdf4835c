-- examples/embed: C programs embedding Lua 5.4, built with their build script and run against
-- real dev servers: host.c in one thread and in several OS threads with one lua_State (and one
-- client) each; frame_loop.c, a frame loop that posts asynchronously and keeps its frame
-- budget. The events are read back from the server.
local devserver = require "devserver"
local shell = require "sh"
local rt = require "runtime"

local DEF = "embed-event"
local HOST = "build/embed-host"
local LOOP = "build/embed-frame-loop"
local SCRIPT = "examples/embed/post_events.lua"
local FRAME_APP = "examples/embed/frame_events.lua"

local q = shell.q

local function slurp(path) return assert(shell.read_file(path)) end

-- sh(cmd) -> status, stdout, stderr
local function sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = rt.execute(cmd .. " </dev/null >" .. q(out) .. " 2>" .. q(err))
  local o, e = slurp(out), slurp(err)
  os.remove(out); os.remove(err)
  return how == "exit" and code or 128 + code, o, e
end

describe("examples/embed", function()
  local srv, client

  lazy_setup(function()
    local status, out, err = sh("sh examples/embed/build.sh " .. q(HOST) .. " " .. q(LOOP))
    assert(status == 0, "build.sh failed:\n" .. out .. err)
    srv, client = devserver.with_client({ defs = { DEF } }, 5)
  end)
  lazy_teardown(function() devserver.release(srv, client) end)

  -- host(args...) with the dev server's address in LHC_API_HOST / LHC_API_PORT
  local function host(args)
    local parts = { "env", "-u", "LHC_TENANT_ID", "LHC_API_HOST=127.0.0.1", "LHC_API_PORT=" .. srv.port, HOST }
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    return sh(table.concat(parts, " "))
  end

  local function assert_stored(wf_run_id, prefix, threads, count)
    for t = 1, threads do
      for i = 1, count do
        local guid = string.format("%s-t%d-%d", prefix, t, i)
        local ev, err = client:get_external_event { wf_run_id = wf_run_id, external_event_def_name = DEF, guid = guid }
        assert(ev, guid .. ": " .. tostring(err))
        assert.same({ thread = t, seq = i }, ev.content)
      end
    end
    -- and nothing beyond: thread threads+1 and post count+1 were never made
    assert.is_nil(client:get_external_event { wf_run_id = wf_run_id, external_event_def_name = DEF,
                                              guid = string.format("%s-t%d-%d", prefix, threads + 1, 1) })
    assert.is_nil(client:get_external_event { wf_run_id = wf_run_id, external_event_def_name = DEF,
                                              guid = string.format("%s-t%d-%d", prefix, 1, count + 1) })
  end

  it("builds with build.sh from gcc and pkg-config lua5.4", function()
    local f = io.open(HOST, "rb")
    assert.is_not_nil(f)
    f:close()
  end)

  it("posts from a script in one embedded lua_State", function()
    local status, out, err = host { SCRIPT, "embed-wf-1", DEF, "3", "single" }
    assert.equal(0, status, err)
    assert.matches("^thread 1: 3 stored %(0 already there%) on 127%.0%.0%.1:%d+\n$", out)
    assert_stored("embed-wf-1", "single", 1, 3)
  end)

  it("posts concurrently from two OS threads, each with its own lua_State and client", function()
    local status, out, err = host { "--threads", "2", SCRIPT, "embed-wf-2", DEF, "50", "two" }
    assert.equal(0, status, err)
    assert.matches("thread 1: 50 stored", out)
    assert.matches("thread 2: 50 stored", out)
    assert.matches("host: 2 of 2 threads succeeded", out)
    assert.equal("", err)
    assert_stored("embed-wf-2", "two", 2, 50)
  end)

  it("stays exactly-once when rerun with the same guids (duplicates, exit 0)", function()
    local status, out, err = host { "--threads", "2", SCRIPT, "embed-wf-2", DEF, "50", "two" }
    assert.equal(0, status, err)
    assert.matches("thread 1: 50 stored %(50 already there%)", out)
    assert.matches("thread 2: 50 stored %(50 already there%)", out)
  end)

  it("scales to eight threads", function()
    local status, out, err = host { "--threads", "8", SCRIPT, "embed-wf-8", DEF, "20", "eight" }
    assert.equal(0, status, err)
    assert.matches("host: 8 of 8 threads succeeded", out)
    assert_stored("embed-wf-8", "eight", 8, 20)
  end)

  it("exits 1 when any thread fails (the server rejects the event def)", function()
    local status, out, err = host { "--threads", "2", SCRIPT, "embed-wf-3", "no-such-def", "2", "bad" }
    assert.equal(1, status)
    assert.matches("host: 0 of 2 threads succeeded", out)
    assert.matches("thread 1 failed: event 1 of 2 %(guid bad%-t1%-1%): PutExternalEvent: INVALID_ARGUMENT", err)
    assert.matches("thread 2 failed: .*No ExternalEventDef named no%-such%-def", err)
  end)

  it("exits 1 when a script raises, and 2 on bad usage", function()
    local status, _, err = host { SCRIPT }
    assert.equal(1, status)
    assert.matches("usage: post_events.lua", err)
    status = host { "--threads", "0", SCRIPT }
    assert.equal(2, status)
    status = host {}
    assert.equal(2, status)
  end)
end)

describe("examples/embed frame loop", function()
  -- Replies take DELAY ms: a post that waited for its reply would hold its frame that long.
  local DELAY, BUDGET = 100, 16
  local srv, client

  lazy_setup(function()
    local status, out, err = sh("sh examples/embed/build.sh " .. q(HOST) .. " " .. q(LOOP))
    assert(status == 0, "build.sh failed:\n" .. out .. err)
    srv, client = devserver.with_client({ defs = { DEF }, args = { "--delay-ms", tostring(DELAY) } }, 30)
  end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local function frame_loop(args)
    local parts = { "env", "-u", "LHC_TENANT_ID", "LHC_API_HOST=127.0.0.1", "LHC_API_PORT=" .. srv.port, LOOP,
                    "--frame-ms", tostring(BUDGET), FRAME_APP }
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    local status, out, err = sh(table.concat(parts, " "))
    -- frames F budget B max_work W (frame N) max_cpu C max_blocked K over_budget O deliveries D measure M
    -- posted P stored S failed F max_in_flight I
    local s = { measure = out:match(" measure (%a+)") }
    for k, v in out:gmatch("(%a[%w_]*) (%d+%.?%d*)") do s[k] = tonumber(v) end
    return status, s, out, err
  end

  it("posts 400 events from 16 ms frames without blocking them: every event stored, every frame in budget", function()
    local status, s, out, err = frame_loop { "frame-wf", DEF, "400", "20", "frame" }
    assert.equal(0, status, out .. err)
    -- the budget counts what the library costs the loop's thread (CPU and blocked time), not
    -- time the scheduler kept it waiting for a CPU: that needs the kernel's schedstat
    assert.equal("schedstat", s.measure, out)
    assert.equal(0, s.over_budget, out)
    assert.is_true(s.max_work <= BUDGET, out)
    assert.equal(400, s.deliveries, out)      -- every on_done ran inside client:poll(0)
    assert.equal(400, s.stored, out)
    assert.equal(0, s.failed, out)
    -- posts of several frames were waiting for their replies at once: the loop went on
    -- ticking while they did
    assert.is_true(s.max_in_flight >= 2 * 20, out)
    assert.is_true(s.frames >= 400 / 20, out)

    local handles = {}
    for i = 1, 400 do
      handles[i] = client:get_external_event_async { wf_run_id = "frame-wf", external_event_def_name = DEF,
                                                     guid = "frame-" .. i }
    end
    for i, h in ipairs(handles) do
      local ev, gerr = h:wait()
      assert(ev, "frame-" .. i .. ": " .. tostring(gerr))
      assert.equal(i, ev.content.seq)
      assert.equal(math.floor((i - 1) / 20) + 1, ev.content.frame) -- posted by the frame due
    end
  end)

  it("the same budget catches a loop that waits: blocking posts overrun their frames", function()
    local status, s, out, err = frame_loop { "frame-wf", DEF, "4", "2", "frame-blocking", "blocking" }
    assert.equal(3, status, out .. err) -- all stored, frames over budget
    assert.equal(4, s.stored, out)
    assert.equal(2, s.frames, out)
    assert.equal(2, s.over_budget, out)
    assert.is_true(s.max_blocked >= 2 * DELAY * 0.9, out) -- two posts' replies, waited for in the frame
  end)
end)
