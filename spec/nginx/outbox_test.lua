-- examples/nginx/outbox.conf for real: Debian's nginx + lua module, two workers sharing one
-- outbox file, against a dev server with a persistent store. Webhooks are answered 202 once
-- durable while the dev server is down; a worker is killed with SIGKILL and nginx reloaded
-- (HUP) in the middle of the load; posts from log_by_lua are queued; once the dev server is
-- back, every acknowledged guid is stored on it exactly once, and /metrics says so.
-- Run by scripts/suites/nginx.sh (busted --run=nginx), after the LuaJIT build of the rock.
local socket = require "socket"
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local files = require "sh"

local q = files.q
local ROOT = os.getenv("PWD")
local LJ = ROOT .. "/build/lua/luajit/lua_modules"
local DEF = "webhook-event"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_file(path) return files.read_file(path) or "" end

local function wait_for(pred, limit)
  local t0 = core.now()
  while core.now() - t0 < limit do
    if pred() then return true end
    core.sleep(0.02)
  end
  return pred()
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local port = select(2, s:getsockname())
  s:close()
  return port
end

-- nginx with examples/nginx/outbox.conf in a fresh prefix (the rock installed into it, so the
-- worker user can read it; the outbox in a directory that user owns).
local function start_nginx(lh_port)
  local n = { prefix = io.popen("mktemp -d /tmp/lh-nginx-ob.XXXXXX"):read("*l"), port = free_port() }
  local p = n.prefix
  assert(sh(string.format("mkdir -p %s/conf %s/logs %s/tmp %s/outbox && chmod 755 %s && chmod 1777 %s/tmp && " ..
                          "chmod 777 %s/outbox && cp -R %s %s/lua_modules && chmod -R a+rX %s/lua_modules",
                          q(p), q(p), q(p), q(p), q(p), q(p), q(p), q(LJ), q(p), q(p))))
  local mods = p .. "/lua_modules"
  n.outbox = p .. "/outbox/webhooks.db"
  local vars = {
    PORT = tostring(n.port), LH_TARGET = "127.0.0.1:" .. lh_port, WAKE_DIR = p .. "/tmp/wake", OUTBOX = n.outbox,
    LUA_PATH = mods .. "/share/lua/5.1/?.lua;" .. mods .. "/share/lua/5.1/?/init.lua",
    LUA_CPATH = mods .. "/lib/lua/5.1/?.so",
  }
  local conf = read_file(ROOT .. "/examples/nginx/outbox.conf"):gsub("%${([%w_]+)}", function(k) return vars[k] end)
  local f = assert(io.open(p .. "/conf/nginx.conf", "w"))
  f:write(conf)
  f:close()
  function n.nginx(args)
    return sh(string.format("nginx -p %s/ -c conf/nginx.conf -e logs/error.log %s 2>>%s/logs/stderr.log", q(p), args or "", q(p)))
  end
  function n.master_pid() return tonumber(read_file(p .. "/logs/nginx.pid"):match("%d+")) end
  function n.worker_pids()
    local pids = {}
    local pp = io.popen("pgrep -P " .. (n.master_pid() or 0))
    for line in pp:read("*a"):gmatch("%d+") do pids[#pids + 1] = tonumber(line) end
    pp:close()
    return pids
  end
  function n.log() return read_file(p .. "/logs/error.log") end
  function n.stop()
    local pid = n.master_pid()
    if pid then
      sh("kill -QUIT " .. pid .. " 2>/dev/null")
      wait_for(function() return not sh("kill -0 " .. pid .. " 2>/dev/null") end, 10)
      sh("kill -KILL " .. pid .. " 2>/dev/null")
    end
    sh("rm -rf " .. q(p))
  end
  assert(n.nginx("-t -q"), read_file(p .. "/logs/stderr.log"))
  assert(n.nginx(), read_file(p .. "/logs/stderr.log"))
  assert(wait_for(function() return n.master_pid() and #n.worker_pids() == 2 end, 5), "nginx did not start")
  return n
end

-- One request on its own connection: status, body ("" when the connection broke).
local function request(port, method, path, body)
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(10)
  body = body or ""
  local ok = conn:send(string.format("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                                     method, path, #body, body))
  local resp = ok and conn:receive("*a") or ""
  conn:close()
  local head, raw = resp:match("^(.-)\r\n\r\n(.*)$")
  if head and head:lower():find("transfer%-encoding: chunked") then
    local out, pos = {}, 1
    while true do
      local size, at = raw:match("^(%x+)\r\n()", pos)
      if not size or tonumber(size, 16) == 0 then break end
      out[#out + 1] = raw:sub(at, at + tonumber(size, 16) - 1)
      pos = at + tonumber(size, 16) + 2
    end
    raw = table.concat(out)
  end
  return tonumber(resp:match("^HTTP/1%.1 (%d+)")), raw or ""
end

local function metrics(port)
  local status, body = request(port, "GET", "/metrics")
  assert.equal(200, status, body)
  local m = {}
  for name, v in body:gmatch("\nlittlehorse_outbox_([%w_]+) ([%d.e+-]+)") do m[name] = tonumber(v) end
  return m, body
end

describe("nginx: examples/nginx/outbox.conf", function()
  it("acknowledges webhooks while LittleHorse is down; through a killed worker and a HUP, each stored exactly once", function()
    local store = os.tmpname()
    os.remove(store)
    local srv = devserver.start { defs = { DEF }, args = { "--store", store } }
    local ngx1 = start_nginx(srv.port)
    local client
    finally(function()
      if client then client:close() end
      ngx1.stop()
      srv:stop()
      os.remove(store)
    end)
    srv:kill("KILL") -- LittleHorse is down: webhooks are still accepted, durably

    local acked, broken = {}, 0
    local function post(i)
      local guid = "wh-" .. i
      local status, body = request(ngx1.port, "POST", "/webhook?wf=wf-" .. (i % 3) .. "&guid=" .. guid, '{"n":' .. i .. '}')
      if status == 202 then
        assert.equal(guid, body:match("%S+"))
        acked[#acked + 1] = guid
      elseif status == nil then
        broken = broken + 1 -- the worker was killed under this request: not acknowledged
      else
        error("webhook " .. i .. ": " .. tostring(status) .. " " .. body)
      end
    end
    for i = 1, 60 do post(i) end
    -- a worker killed mid-load, then a reload, posting on
    local victim = ngx1.worker_pids()[1]
    assert(sh("kill -KILL " .. victim))
    for i = 61, 120 do post(i) end
    assert(wait_for(function() return #ngx1.worker_pids() == 2 end, 10), "the master did not replace the killed worker")
    assert(sh("kill -HUP " .. ngx1.master_pid()))
    for i = 121, 180 do post(i) end
    -- log_by_lua: queued posts
    for i = 1, 20 do assert.equal(204, (request(ngx1.port, "GET", "/seen?wf=seen&guid=seen-" .. i))) end
    assert.is_true(#acked >= 170, #acked .. " of 180 webhooks acknowledged")
    local first_acked = #acked
    local m = metrics(ngx1.port)
    assert.is_true(m.accepted_total >= #acked)
    assert.equal(0, m.delivered_total)
    assert.is_true(m.pending >= first_acked)
    assert.is_true(m.oldest_pending_age_seconds > 0)

    -- LittleHorse is back: the workers' timers deliver; a worker is killed while delivering
    -- (its leased records go out again once the lease ends) while webhooks keep coming
    srv:restart()
    client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5 }
    for i = 181, 200 do post(i) end
    assert(wait_for(function() return metrics(ngx1.port).delivered_total > 0 end, 30), "no delivery")
    assert(sh("kill -KILL " .. ngx1.worker_pids()[1]))
    for i = 201, 240 do post(i) end
    assert(wait_for(function() return #ngx1.worker_pids() == 2 end, 10), "the master did not replace the killed worker")
    assert(wait_for(function() return metrics(ngx1.port).pending == 0 end, 60),
           "still pending: " .. select(2, metrics(ngx1.port)) .. "\n" .. ngx1.log())
    m = metrics(ngx1.port)
    if os.getenv("LH_SPEC_VERBOSE") then
      print(string.format("acked %d broken %d accepted %d delivered %d duplicates %d retries %d", #acked, broken,
                          m.accepted_total, m.delivered_total, m.duplicates_total, m.retries_total))
      for line in ngx1.log():gmatch("[^\n]+") do if line:find("%[warn%]") or line:find("%[alert%]") or line:find("littlehorse") then print(line) end end
    end
    assert.equal(m.accepted_total, m.delivered_total + m.duplicates_total)
    assert.equal(0, m.dead_total)
    -- exactly once: one event per record the outbox accepted, each acknowledged guid among them
    assert.equal(m.accepted_total, srv:stats().events)
    for _, guid in ipairs(acked) do
      local i = tonumber(guid:match("%d+"))
      assert(client:get_external_event { wf_run_id = "wf-" .. (i % 3), external_event_def_name = DEF, guid = guid },
             "acknowledged webhook " .. guid .. " not stored")
    end
    for i = 1, 20 do
      assert(client:get_external_event { wf_run_id = "seen", external_event_def_name = DEF, guid = "seen-" .. i })
    end
    -- the killed worker's SIGKILL is the only [alert] (its exit status); no [error] lines
    local errors = {}
    for line in ngx1.log():gmatch("[^\n]+") do
      if line:find("[error]", 1, true) or (line:find("[alert]", 1, true) and not line:find("exited on signal 9", 1, true)) then
        errors[#errors + 1] = line
      end
    end
    assert.same({}, errors)
  end)
end)
