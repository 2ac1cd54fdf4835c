-- Crash safety of littlehorse.outbox, end to end: a process posting into an outbox (and
-- delivering between posts) is killed with SIGKILL at moments it does not choose, 22 times,
-- while the dev server (with its persistent --store) is killed and restarted under it. After a
-- final drain, every guid a post returned is stored on the dev server, and the server holds
-- exactly as many events as the outbox ever accepted: none lost, none stored twice. A third of
-- the posts are CorrelatedEvents: each key returned is stored (once: the server holds one per
-- key, and as many as were accepted).
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local sh = require "sh"
local rt = require "runtime"

local q = sh.q
local DEF = "crash-event"
local CORR_DEF = "crash-corr" -- takes CorrelatedEvents (spec/support/outbox_poster.lua posts them)
local defer = require "cleanup" (function(f) finally(f) end)

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/lh-outbox-crash.XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

local function alive(pid)
  local stat = sh.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- Complete lines ("<wf> <guid>\n", or "correlated <key>\n") of a poster's output file.
local function lines_of(path)
  local out = {}
  for wf, guid in (sh.read_file(path) or ""):gmatch("(%S+) (%S+)\n") do out[#out + 1] = { wf, guid } end
  return out
end

local function start_poster(path, port, tag, out, err)
  local cmd = string.format("LUA_PATH=%s LUA_CPATH=%s exec %s spec/support/outbox_poster.lua %s %d %s >%s 2>%s",
                            q(package.path), q(package.cpath), rt.lua, q(path), port, tag, q(out), q(err))
  local p = io.popen("sh -c " .. q(cmd) .. " & echo $!")
  local pid = assert(tonumber(p:read("*l")))
  p:close()
  return pid
end

describe("outbox crash safety", function()
  it("22 kill -9s of a posting process while the dev server flaps: every returned guid and key stored exactly once", function()
    local dir = tmpdir()
    local store = dir .. "/server.store"
    local path = dir .. "/outbox.db"
    local srv = devserver.start { defs = { DEF }, args = { "--store", store } }
    local client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
    assert(client:put_external_event_def { name = CORR_DEF, correlated_event_config = true }) -- kept in --store
    client:close()
    client = nil
    defer(function()
      if client then client:close() end
      srv:stop()
      os.execute("rm -rf " .. q(dir))
    end)
    math.randomseed(os.time())
    local returned, kills, flaps = {}, 0, 0
    for round = 1, 22 do
      local out, err = dir .. "/out." .. round, dir .. "/err." .. round
      local pid = start_poster(path, srv.port, round, out, err)
      local reaped = false -- once gone, its pid may be another process's: never signalled again
      defer(function() if not reaped then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end end)
      -- kill it after a random number of returned posts (0: possibly before its first one)
      local target = math.random(0, 60)
      local server_kill_at = round % 3 == 1 and math.random(0, target) or nil
      local deadline = core.now() + 60
      local function kill_server()
        srv:kill("KILL")
        flaps = flaps + 1
      end
      while #lines_of(out) < target do
        assert(alive(pid), "the poster died by itself: " .. (sh.read_file(err) or ""))
        if server_kill_at and #lines_of(out) >= server_kill_at and not srv.dead then kill_server() end
        assert(core.now() < deadline, "the poster returned only " .. #lines_of(out) .. " posts in 60 s: " ..
               (sh.read_file(err) or ""))
        core.sleep(0.002)
      end
      -- a server kill of this round still due (the poster passed server_kill_at between two
      -- looks, or the target was 0) happens now, while the poster still runs
      if server_kill_at and not srv.dead then kill_server() end
      os.execute("kill -KILL " .. pid)
      while alive(pid) do core.sleep(0.002) end
      reaped = true
      kills = kills + 1
      for _, l in ipairs(lines_of(out)) do returned[#returned + 1] = l end
      -- a server killed this round comes back for the next one, on the same port and store
      if srv.dead and round % 2 == 0 then srv:restart() end
      if srv.dead and round == 22 then srv:restart() end
    end
    if srv.dead then srv:restart() end
    assert.equal(22, kills)
    assert.is_true(flaps >= 5)
    assert.is_true(#returned > 100, "only " .. #returned .. " posts returned")

    client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
    local ob = assert(lh.outbox(path, { client = client }))
    local counts = ob:drain(60)
    assert.equal(0, counts.pending)
    local st = assert(ob:stats())
    ob:close()
    assert.equal(0, st.pending)
    assert.equal(0, st.dead)
    assert.equal(st.accepted, st.delivered + st.duplicates)
    -- exactly once: the server holds one event per record the outbox ever accepted (a post
    -- killed after storing but before returning is one of them), and each returned guid
    local server = srv:stats()
    if os.getenv("LH_SPEC_VERBOSE") then print(string.format("returned %d accepted %d delivered %d duplicates %d retries %d server events %d correlated %d flaps %d", #returned, st.accepted, st.delivered, st.duplicates, st.retries, server.events, server.correlated, flaps)) end
    assert.equal(st.accepted, server.events + server.correlated)
    assert.is_true(st.accepted >= #returned)
    local seen, keys = {}, 0
    for _, l in ipairs(returned) do
      assert.is_nil(seen[l[2]], "guid or key returned twice: " .. l[2])
      seen[l[2]] = true
      if l[1] == "correlated" then
        keys = keys + 1
        local ce, e = client:get_correlated_event { key = l[2], external_event_def_name = CORR_DEF }
        assert(ce, "returned key " .. l[2] .. " not on the server: " .. tostring(e))
        assert.equal(tonumber(l[2]:match("(%d+)$")), ce.content.n)
      else
        local ev, e = client:get_external_event { wf_run_id = l[1], external_event_def_name = DEF, guid = l[2] }
        assert(ev, "returned guid " .. l[2] .. " not on the server: " .. tostring(e))
      end
    end
    assert.is_true(keys > 20, "only " .. keys .. " CorrelatedEvents returned")
    assert.is_true(server.correlated >= keys)
  end)
end)
