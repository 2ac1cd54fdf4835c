-- examples/embed: a C program embedding Lua 5.4, built with its build script and run against a
-- real dev server, in one thread and in several OS threads with one lua_State (and one client)
-- each. The events are read back from the server.
local devserver = require "devserver"
local shell = require "sh"

local DEF = "embed-event"
local HOST = "build/embed-host"
local SCRIPT = "examples/embed/post_events.lua"

local q = shell.q

local function slurp(path) return assert(shell.read_file(path)) end

-- sh(cmd) -> status, stdout, stderr
local function sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = os.execute(cmd .. " </dev/null >" .. q(out) .. " 2>" .. q(err))
  local o, e = slurp(out), slurp(err)
  os.remove(out); os.remove(err)
  return how == "exit" and code or 128 + code, o, e
end

describe("examples/embed", function()
  local srv, client

  lazy_setup(function()
    local status, out, err = sh("sh examples/embed/build.sh " .. q(HOST))
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
