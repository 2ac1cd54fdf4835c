-- Crash safety of the outbox in nginx, under random worker kills: examples/nginx/outbox.conf
-- for real (2 workers, the outbox started in init_worker), webhooks coming from a client loop
-- that keeps several requests in flight, each for its own WfRun and without a guid (the outbox
-- chooses it and the webhook answers it once durable). Meanwhile, at random moments, 22 times
-- a random worker gets SIGKILL, the dev server (with its persistent --store) is killed and
-- restarted three times, nginx is reloaded (HUP) and stopped (QUIT) and started again on the
-- same file. At the end, with the dev server up and delivery finished: every acknowledged
-- webhook is stored on the dev server exactly once, with the guid it was answered; a webhook
-- that got no answer (its worker was killed under it) is stored at most once; nothing else is
-- stored; the server holds exactly as many events as the outbox ever accepted.
-- Run by scripts/suites/nginx.sh (busted --run=nginx), after the LuaJIT build of the rock.
local socket = require "socket"
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local files = require "sh"
local host = require "nginx_host"

local q = files.q
local wait_for = host.wait_for
local DEF = "webhook-event"
local KILLS = 22
local IN_FLIGHT = 8

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

-- The example's options, with retries capped at 2 s (default 60): after the last flap of the
-- dev server, delivery resumes within seconds instead of a minute of jittered backoff.
local function config()
  local conf = files.read_file("examples/nginx/outbox.conf")
  local n
  conf, n = conf:gsub("(lease = %d+,[^\n]*\n)", "%1      max_backoff = 2,\n", 1)
  assert(n == 1, "examples/nginx/outbox.conf: no 'lease = N,' line in the outbox's options")
  return conf
end

-- The body of a complete HTTP/1.1 response (Content-Length or chunked), or nil if incomplete.
local function complete_body(resp)
  local head, raw = resp:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil end
  local len = tonumber(head:lower():match("\ncontent%-length:%s*(%d+)"))
  if len then return #raw >= len and raw:sub(1, len) or nil end
  if not head:lower():find("transfer%-encoding: chunked") then return nil end
  local out, pos = {}, 1
  while true do
    local size, at = raw:match("^(%x+)\r\n()", pos)
    if not size then return nil end
    size = tonumber(size, 16)
    if size == 0 then return table.concat(out) end
    if #raw < at + size + 1 then return nil end
    out[#out + 1] = raw:sub(at, at + size - 1)
    pos = at + size + 2
  end
end

-- One request on its own connection, answered in full: status, body.
local function request(port, method, path)
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(10)
  assert(conn:send(string.format("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                                 method, path)))
  local resp = conn:receive("*a") or ""
  conn:close()
  return tonumber(resp:match("^HTTP/1%.1 (%d+)")), complete_body(resp) or ""
end

local function metrics(port)
  local status, body = request(port, "GET", "/metrics")
  assert.equal(200, status, body)
  local m = {}
  for name, v in body:gmatch("\nlittlehorse_outbox_([%w_]+) ([%d.e+-]+)") do m[name] = tonumber(v) end
  m.text = body
  return m
end

-- The client loop: `width` webhooks (IN_FLIGHT; 0: no new ones) in flight whenever pump() is
-- called. Each request i is
-- POST /webhook?wf=r-<i>; its outcome: "acked" (202 and a guid, in full), "unanswered" (the
-- connection ended without a complete answer), "refused" (no connection: nginx was between a
-- stop and a start), or "other" (any other answer: a failure of the spec).
local function new_load(port)
  local L = { width = IN_FLIGHT, reqs = {}, inflight = {}, next_i = 0, counts = { acked = 0, unanswered = 0, refused = 0, other = 0 } }
  local function settle(r, outcome)
    r.outcome = outcome
    L.counts[outcome] = L.counts[outcome] + 1
  end
  function L.fill()
    while #L.inflight < L.width do
      L.next_i = L.next_i + 1
      local i = L.next_i
      local r = { i = i, buf = {}, t0 = core.now() }
      L.reqs[i] = r
      local c = socket.tcp()
      c:settimeout(2)
      if not c:connect("127.0.0.1", port) then
        c:close()
        settle(r, "refused")
        return -- nginx is not listening now: try again at the next pump
      end
      local body = '{"n":' .. i .. '}'
      local ok = c:send(string.format("POST /webhook?wf=r-%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
                                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", i, #body, body))
      c:settimeout(0)
      r.sock = c
      if not ok then
        c:close()
        settle(r, "unanswered")
      else
        L.inflight[#L.inflight + 1] = r
      end
    end
  end
  function L.pump()
    local left = {}
    for _, r in ipairs(L.inflight) do
      local data, err, partial = r.sock:receive(8192)
      local got = data or partial
      if got and #got > 0 then r.buf[#r.buf + 1] = got end
      if err == "closed" or (err and err ~= "timeout") then
        r.sock:close()
        local resp = table.concat(r.buf)
        local status = tonumber(resp:match("^HTTP/1%.1 (%d+)"))
        local body = complete_body(resp)
        if status == 202 and body and body:match("^%S+\n$") then
          r.guid = body:match("%S+")
          settle(r, "acked")
        elseif not body then
          settle(r, "unanswered")
        else
          r.answer = resp
          settle(r, "other")
        end
      else
        assert(core.now() - r.t0 < 30, "webhook " .. r.i .. " not answered in 30 s")
        left[#left + 1] = r
      end
    end
    L.inflight = left
    L.fill()
  end
  return L
end

describe("nginx: the outbox under random worker kills", function()
  it(KILLS .. " SIGKILLed workers, a flapping dev server, HUP, QUIT and a restart: each acknowledged webhook stored exactly once", function()
    math.randomseed(os.time())
    local obdir = io.popen("mktemp -d /tmp/lh-nginx-outbox-kill.XXXXXX"):read("*l")
    assert(sh("chmod 777 " .. q(obdir)))
    local store = obdir .. "/server.store"
    local srv = devserver.start { defs = { DEF }, args = { "--store", store } }
    local ngx = host.start(config(), { LH_TARGET = "127.0.0.1:" .. srv.port, OUTBOX = obdir .. "/webhooks.db" })
    local client
    finally(function()
      if client then client:close() end
      ngx.stop()
      srv:stop()
      sh("rm -rf " .. q(obdir))
    end)

    local load = new_load(ngx.port)
    -- what happens after the k-th worker kill (the kills' moments are random)
    local after_kill = {
      [2] = "server down", [5] = "server up", [8] = "server down", [10] = "reload", [12] = "server up",
      [14] = "stop and start", [17] = "server down", [20] = "server up",
    }
    local kills, reloads, restarts = 0, 0, 0
    local quitting -- while nginx stops: a function telling whether its master is gone
    local next_kill = core.now() + 0.3 + math.random() * 0.8
    local t0 = core.now()
    while kills < KILLS or quitting do
      load.pump()
      socket.select(nil, nil, 0.002)
      local now = core.now()
      if quitting then
        if quitting() then
          ngx.start()
          quitting = nil
          restarts = restarts + 1
          next_kill = core.now() + 0.2 + math.random() * 0.8
        end
      elseif now >= next_kill then
        -- the workers first (pgrep takes milliseconds, in which the webhooks in flight would be
        -- answered and the kill would find idle workers), then new webhooks, and the kill a
        -- random moment later, while the workers read, store and answer them
        local pids = ngx.worker_pids()
        load.pump()
        socket.select(nil, nil, math.random() * 0.004)
        if #pids > 0 then
          local victim = pids[math.random(#pids)]
          assert(sh("kill -KILL " .. victim))
          kills = kills + 1
          local action = after_kill[kills]
          if action == "server down" then
            srv:kill("KILL")
          elseif action == "server up" then
            srv:restart()
          elseif action == "reload" then
            assert(ngx.signal("HUP"))
            reloads = reloads + 1
          elseif action == "stop and start" then
            quitting = ngx.quit()
          end
        end
        next_kill = core.now() + 0.2 + math.random() * 1.0
      end
      assert(now - t0 < 60, "the kills took more than 60 s")
    end
    -- more webhooks after the last kill, then no new ones: every request in flight is answered
    local more = core.now() + 0.5
    while core.now() < more do load.pump(); socket.select(nil, nil, 0.002) end
    local drain = core.now()
    load.width = 0
    while #load.inflight > 0 do
      load.pump()
      assert(core.now() - drain < 30, "webhooks in flight not answered")
      socket.select(nil, nil, 0.002)
    end
    if srv.dead then srv:restart() end
    local c = load.counts
    assert.equal(KILLS, kills)
    assert.equal(1, reloads)
    assert.equal(1, restarts)
    assert.equal(0, c.other, "webhooks answered neither 202 nor with a broken connection")
    assert.is_true(c.acked >= 200, "only " .. c.acked .. " webhooks acknowledged")

    -- delivery finishes: nothing pending, every accepted record delivered (or found stored)
    local m
    assert(wait_for(function()
      m = metrics(ngx.port)
      return m.pending == 0 and m.accepted_total == m.delivered_total + m.duplicates_total
    end, 60), "delivery did not finish: " .. (m and m.text or "") .. "\n" .. ngx.log())
    assert.equal(0, m.dead_total)

    -- what the dev server stored (its persistent store: it was killed and restarted), by WfRun
    client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
    local stored, total = {}, 0
    for id in client:external_event_ids { def = DEF, page_size = 1000 } do
      local wf = id.wf_run_id.id
      stored[wf] = stored[wf] or {}
      table.insert(stored[wf], id.guid)
      total = total + 1
    end
    local st = srv:stats()
    assert.equal(total, st.events)
    -- exactly once: each acknowledged webhook is one event with its guid; one that got no
    -- answer is one event or none (it may have been stored before its worker was killed); a
    -- refused one is none; and nothing else is stored
    local unanswered_stored = 0
    for i = 1, load.next_i do
      local r, got = load.reqs[i], stored["r-" .. i]
      if r.outcome == "acked" then
        assert.same({ r.guid }, got, "acknowledged webhook r-" .. i)
      elseif r.outcome == "unanswered" then
        assert.is_true(got == nil or #got == 1, "unanswered webhook r-" .. i .. " stored " .. #(got or {}) .. " times")
        if got then unanswered_stored = unanswered_stored + 1 end
      else
        assert.is_nil(got, r.outcome .. " webhook r-" .. i .. " stored")
      end
      stored["r-" .. i] = nil
    end
    assert.same({}, stored)
    assert.equal(m.accepted_total, total)
    -- and the counts stayed put meanwhile (the listing took a while): nothing more was delivered
    local m2 = metrics(ngx.port)
    assert.same({ m.accepted_total, m.delivered_total, m.duplicates_total, 0 },
                { m2.accepted_total, m2.delivered_total, m2.duplicates_total, m2.pending })
    assert.equal(c.acked + unanswered_stored, total)

    -- the kills hit workers (the master saw each one die of SIGKILL); no [error] in the log
    local log, signalled, errors = ngx.log(), 0, {}
    for line in log:gmatch("[^\n]+") do
      if line:find("exited on signal 9", 1, true) then signalled = signalled + 1
      elseif line:find("[error]", 1, true) or line:find("[alert]", 1, true) or line:find("[crit]", 1, true) then
        errors[#errors + 1] = line
      end
    end
    if os.getenv("LH_SPEC_VERBOSE") then
      print(string.format("\nrequests %d: acked %d unanswered %d (stored %d) refused %d; accepted %d delivered %d " ..
                          "duplicates %d retries %d; server events %d; %.1f s",
                          load.next_i, c.acked, c.unanswered, unanswered_stored, c.refused, m2.accepted_total,
                          m2.delivered_total, m2.duplicates_total, m2.retries_total, total, core.now() - t0))
    end
    assert.equal(KILLS, signalled)
    assert.same({}, errors)
  end)
end)
