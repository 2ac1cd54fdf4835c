-- examples/nginx/outbox.conf does not block its worker: /health keeps answering while
-- webhooks are made durable and the delivery timer retries against a LittleHorse that is down,
-- judged against a control in the same run (the way spec/nginx/nginx_test.lua judges the OAuth
-- and slow-server paths): whatever slows the machine (other processes, both cores busy) slows
-- both, while a worker that waits for the disk, or a delivery step that holds the event loop,
-- shows only in the outbox phases.
--
-- The example, with four changes made here (each must match exactly once): one worker (the
-- probe and the load meet in it), LittleHorse at a port nothing listens on (every delivery call
-- fails at once with UNAVAILABLE), retry delays of a few milliseconds (so the deliverer claims,
-- sends, fails and records outcomes all the time instead of pausing for seconds: the worst
-- case for the event loop), and two locations for the control and for the check of the check:
--   /hold   reads and decodes the body and answers after a 2 ms ngx.sleep, about the time a
--           durable post takes here: the same HTTP and Lua work without the outbox;
--   /spin   the same, but keeps the worker busy for 20 ms (a handler that blocks): the judge
--           must notice it.
-- Run by scripts/suites/nginx.sh (busted --run=nginx), after the LuaJIT build of the rock.
local socket = require "socket"
local core = require "littlehorse.core"
local files = require "sh"

local host = require "nginx_host"

local q = files.q
local ROOT = os.getenv("PWD")
local wait_for = host.wait_for

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

-- s with `from` (a plain string) replaced by `to`; it must occur exactly once.
local function replace_once(s, from, to)
  local at = s:find(from, 1, true)
  assert(at and not s:find(from, at + 1, true), "examples/nginx/outbox.conf changed: '" .. from .. "' not found once")
  return s:sub(1, at - 1) .. to .. s:sub(at + #from)
end

local CONTROL_LOCATIONS = [[
    location = /hold {
      content_by_lua_block {
        local lh = require "littlehorse"
        ngx.req.read_body()
        lh.json_decode(ngx.req.get_body_data() or "{}")
        ngx.sleep(0.002)
        ngx.status = 202
        ngx.say("held")
      }
    }

    location = /spin {
      content_by_lua_block {
        local lh = require "littlehorse"
        ngx.req.read_body()
        lh.json_decode(ngx.req.get_body_data() or "{}")
        local t0 = lh.core.now()
        while lh.core.now() - t0 < 0.020 do end
        ngx.status = 202
        ngx.say("spun")
      }
    }

    location = /health {]]

local function start_nginx(lh_target, outbox)
  local conf = assert(files.read_file(ROOT .. "/examples/nginx/outbox.conf"))
  conf = replace_once(conf, "worker_processes 2;", "worker_processes 1;")
  conf = replace_once(conf, "lease = 10,", "lease = 10, initial_backoff = 0.005, max_backoff = 0.02,")
  conf = replace_once(conf, "    location = /health {", CONTROL_LOCATIONS)
  return host.start(conf, { LH_TARGET = lh_target, OUTBOX = outbox }, { workers = 1 })
end

local prober = host.prober

-- Keeps `inflight` POSTs to `path` going (each answered one replaced by a new one, on its own
-- connection) for `seconds`, probing /health about every half millisecond meanwhile. Returns
-- the probes' latencies and a count of the POSTs' statuses.
local function probe_under_load(get, port, path, inflight, seconds)
  local conns, statuses, lat, seq = {}, {}, {}, 0
  local function open()
    seq = seq + 1
    local c = assert(socket.connect("127.0.0.1", port))
    local body = '{"n":' .. seq .. ',"items":[{"sku":"A-1","qty":2}]}'
    assert(c:send(string.format("POST %s?wf=wf-%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                                path, seq % 7, #body, body)))
    c:settimeout(0)
    conns[#conns + 1] = { sock = c, buf = {} }
  end
  local t0 = core.now()
  for _ = 1, inflight do open() end
  while true do
    local i = 1
    while i <= #conns do
      local c = conns[i]
      local data, err, partial = c.sock:receive(8192)
      local got = data or partial
      if got and #got > 0 then c.buf[#c.buf + 1] = got end
      if err == "closed" then
        c.sock:close()
        local status = table.concat(c.buf):match("^HTTP/1%.1 (%d+)") or "none"
        statuses[status] = (statuses[status] or 0) + 1
        table.remove(conns, i)
        if core.now() - t0 < seconds then open() end
      else
        i = i + 1
      end
    end
    if #conns == 0 then break end
    local st, dt = get("/health")
    assert.equal(200, st)
    lat[#lat + 1] = dt
    assert(core.now() - t0 < seconds + 30, "POSTs to " .. path .. " not answered in 30 s")
    socket.select(nil, nil, 0.0005)
  end
  return lat, statuses
end

local pct = host.pct

-- The limits of spec/nginx/nginx_test.lua's judge, p90 within 2 x the control's + 5 ms and p99
-- within 3 x the control's + 20 ms (the tail is where scheduling noise lives on a busy
-- machine), and one on the median, p50 within 2 x the control's + 2 ms: a worker that waits
-- for the writer's fsync on every post (about 1-5 ms each here) shows there first.
local function judge(lat, ctl)
  table.sort(lat)
  table.sort(ctl)
  local p50, c50, p90, c90, p99, c99 = pct(lat, 0.5), pct(ctl, 0.5), pct(lat, 0.9), pct(ctl, 0.9), pct(lat, 0.99), pct(ctl, 0.99)
  local limit50, limit90, limit99 = 2 * c50 + 0.002, 2 * c90 + 0.005, 3 * c99 + 0.020
  local ms = function(x) return x * 1000 end
  return p50 <= limit50 and p90 <= limit90 and p99 <= limit99,
    string.format("p50 %.2f, p90 %.2f, p99 %.2f, max %.2f ms over %d probes; control p50 %.2f, p90 %.2f, p99 %.2f ms " ..
                  "over %d; limits p50 <= %.2f, p90 <= %.2f, p99 <= %.2f ms",
                  ms(p50), ms(p90), ms(p99), ms(lat[#lat]), #lat, ms(c50), ms(c90), ms(c99), #ctl,
                  ms(limit50), ms(limit90), ms(limit99))
end

local function metric(get_body, name)
  return tonumber(get_body():match("\nlittlehorse_outbox_" .. name .. " ([%d.e+-]+)"))
end

describe("nginx: examples/nginx/outbox.conf does not block its worker", function()
  it("answers /health while webhooks are stored and deliveries fail and retry (LittleHorse down), against a control", function()
    local obdir = io.popen("mktemp -d /tmp/lh-nginx-obh-db.XXXXXX"):read("*l")
    assert(sh("chmod 777 " .. q(obdir)))
    local n = start_nginx("127.0.0.1:" .. host.free_port(), obdir .. "/webhooks.db") -- nothing listens there
    finally(function()
      n.stop()
      sh("rm -rf " .. q(obdir))
    end)
    local get = prober(n.port)
    assert(wait_for(function() return pcall(get, "/health") end, 5), "nginx does not answer")
    local function metrics()
      local conn = assert(socket.connect("127.0.0.1", n.port))
      conn:settimeout(10)
      assert(conn:send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      local body = conn:receive("*a") or ""
      conn:close()
      return body
    end
    -- warm: the first webhooks start the wake reader and the channel's first connection attempt
    local _, warm = probe_under_load(get, n.port, "/webhook", 4, 0.3)
    assert.is_true((warm["202"] or 0) > 0, "no webhook accepted: " .. n.log())
    local retries0 = metric(metrics, "retries_total")

    -- rounds alternate, so that both sides see the same machine
    local lat, ctl, accepted = {}, {}, 0
    for _ = 1, 3 do
      local l, s = probe_under_load(get, n.port, "/webhook", 20, 1.5)
      for k, v in pairs(s) do assert.equal("202", k, v .. " webhooks answered " .. k .. "\n" .. n.log()) end
      accepted = accepted + (s["202"] or 0)
      for _, v in ipairs(l) do lat[#lat + 1] = v end
      local c, cs = probe_under_load(get, n.port, "/hold", 20, 1.5)
      assert.same({ ["202"] = cs["202"] }, cs)
      for _, v in ipairs(c) do ctl[#ctl + 1] = v end
    end
    local ok, figures = judge(lat, ctl)
    print("\n    /health with 20 webhooks in flight, LittleHorse down: " .. figures)
    -- the deliverer was busy all along: records claimed, sent, failed and retried
    local retries = metric(metrics, "retries_total") - retries0
    print(string.format("    %d webhooks accepted, %d failed delivery attempts meanwhile", accepted, retries))
    assert.is_true(#lat >= 150 and #ctl >= 150, "too few probes: " .. #lat .. ", " .. #ctl)
    assert.is_true(accepted >= 300, accepted .. " webhooks accepted")
    assert.is_true(retries >= 1000, retries .. " failed delivery attempts: the deliverer was not busy")
    assert.is_true(ok, figures)

    -- the check is real: a handler that holds the worker for 20 ms per request fails it
    local spun, ss = probe_under_load(get, n.port, "/spin", 20, 1)
    assert.same({ ["202"] = ss["202"] }, ss)
    local blocks, bfigures = judge(spun, ctl)
    print("    /health with 20 requests in flight that hold the worker 20 ms each: " .. bfigures)
    assert.is_false(blocks, "the check did not notice a blocked worker: " .. bfigures)
    for line in n.log():gmatch("[^\n]+") do
      assert.is_nil(line:find("%[alert%]") or line:find("%[crit%]") or line:find("%[emerg%]"), line)
    end
  end)
end)
