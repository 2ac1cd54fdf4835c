-- OpenResty integration, for real: Debian's nginx + lua module, started by hand on loopback
-- with examples/nginx/nginx.conf, against a dev server that answers slowly (200 ms).
-- Run by scripts/suites/nginx.sh (busted --run=nginx), after the LuaJIT build of the rock.
--
-- Independent of where the checkout lives: started as root, nginx runs its workers as
-- `nobody`, which cannot read a checkout under a private (0700) directory. So the LuaJIT
-- build of the rock is installed into each test nginx's own prefix (world-readable, like a
-- system install), and the wake directory goes under a sticky, world-writable prefix/tmp
-- (like /tmp), where the worker user makes its own private directory.
local socket = require "socket"
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local token_server = require "token_server"
local files = require "sh"
local host = require "nginx_host"

local q = files.q
local ROOT = os.getenv("PWD")
local LJ = ROOT .. "/build/lua/luajit/lua_modules"
local HOLD_S = 0.2 -- the dev server's delay; the control location holds requests as long

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_file(path) return files.read_file(path) or "" end -- "" when missing

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

-- HTTP/1.1 GETs on a kept-alive connection: status, seconds (spec/support/nginx_host.lua)
local function prober(port) return host.prober(port, 5) end

-- n POSTs to `path` (on `port`), all sent before this returns (each on its own connection),
-- read back later with :collect(); one process, no helpers, so nothing else competes for the CPU.
local function post_many(port, n, wf, path)
  local conns = {}
  for i = 1, n do
    local c = assert(socket.connect("127.0.0.1", port))
    local body = '{"n":' .. i .. '}'
    assert(c:send(string.format("POST %s?wf=%s&guid=%s-%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
                                "Content-Length: %d\r\n\r\n%s", path or "/event", wf, wf, i, #body, body)))
    c:settimeout(0)
    conns[i] = { sock = c, buf = {} }
  end
  local batch = { conns = conns, left = n }
  -- Read whatever has arrived; true when every response is complete (the server closes).
  function batch:pump()
    for _, c in ipairs(self.conns) do
      if not c.done then
        local data, err, partial = c.sock:receive(8192)
        local got = data or partial
        if got and #got > 0 then c.buf[#c.buf + 1] = got end
        if err == "closed" then
          c.done = true
          c.sock:close()
          self.left = self.left - 1
        end
      end
    end
    return self.left == 0
  end
  function batch:collect(limit)
    local t0 = core.now()
    while not self:pump() and core.now() - t0 < limit do socket.select(nil, nil, 0.005) end
    local codes, bodies = {}, {}
    for i, c in ipairs(self.conns) do
      local response = table.concat(c.buf)
      codes[i] = response:match("^HTTP/1%.1 (%d+)") or "none"
      bodies[i] = response:match("\r\n\r\n(.*)$")
    end
    return codes, bodies
  end
  return batch
end

-- Test-only locations, on a second port, added to the example's http block.
local TEST_SERVER = [[
  server {
    listen 127.0.0.1:${TEST_PORT};

    # The control: holds each request as long as the dev server holds a post, without
    # LittleHorse (a timer, like the wait on the wake socket, but no call).
    location = /hold {
      content_by_lua_block { ngx.req.read_body(); ngx.sleep(${HOLD_S}); ngx.say("held") }
    }

    # A deliberately blocking call path: an async call waited for with h:wait() holds the
    # worker for the server's whole delay. The /health check must fail on it.
    location = /event-blocking {
      content_by_lua_block {
        local lh = require "littlehorse"
        ngx.req.read_body()
        local h = package.loaded.lh_client:put_external_event_async {
          wf_run_id = ngx.var.arg_wf, external_event_def_name = "nginx-event", guid = ngx.var.arg_guid,
          content = lh.json_decode(ngx.req.get_body_data() or "{}") }
        local ev, err = h:wait()
        ngx.say(ev and "stored" or tostring(err))
      }
    }

    # A CorrelatedEvent posted with retries by its key (the request's guid argument), to the
    # def named by the def argument (default nginx-corr). Bodies with a Content-Length (not
    # chunked), for the test's plain HTTP reader.
    location = /correlated {
      content_by_lua_block {
        local lh = require "littlehorse"
        ngx.req.read_body()
        local ce, info = package.loaded.lh_client:post_correlated_event(ngx.var.arg_guid, ngx.var.arg_def or "nginx-corr",
          lh.json_decode(ngx.req.get_body_data() or "null"), { retry = { deadline = 10 } })
        local body
        if ce then
          body = lh.json_encode { key = ce.id.key, content = ce.content, duplicate = info.duplicate,
                                  correlated = #ce.external_events }
        else
          ngx.status = 502
          body = tostring(info)
        end
        ngx.header.content_length = #body
        ngx.print(body)
      }
    }

    # Every ExternalEvent of a WfRun, through the iterator, two to a page.
    location = /events {
      content_by_lua_block {
        local guids = {}
        for ev in package.loaded.lh_client:external_events(ngx.var.arg_wf, { page_size = 2 }) do
          guids[#guids + 1] = ev.id.guid
        end
        table.sort(guids)
        local body = table.concat(guids, ",")
        ngx.header.content_length = #body
        ngx.print(body)
      }
    }

    # A post with a client that fetches OAuth tokens from ${OAUTH_URL} (made on first use).
    location = /event-oauth {
      content_by_lua_block {
        local c = package.loaded.oauth_client
        if not c then
          c = require("littlehorse").client { target = "${LH_TARGET}", timeout = 5,
            oauth = { client_id = "lh-client", client_secret = "lh-secret", token_url = "${OAUTH_URL}" } }
          package.loaded.oauth_client = c
        end
        local ev, err = c:put_external_event({ wf_run_id = ngx.var.arg_wf, external_event_def_name = "nginx-event",
                                                guid = ngx.var.arg_guid, content = 1 }, { reply = false })
        ngx.say(ev and "stored" or tostring(err))
      }
    }

    # Posts from log_by_lua, where nothing may wait: post_event returns at once (true and
    # { deferred = true, guid = }), the post goes on in a timer.
    location = /log-post {
      content_by_lua_block { ngx.say("answered") }
      log_by_lua_block {
        local ok, info = package.loaded.lh_client:post_event(ngx.var.arg_wf, "nginx-event",
          { n = tonumber(ngx.var.arg_guid:match("%d+$")) }, { guid = ngx.var.arg_guid })
        if ok ~= true or not info.deferred or info.guid ~= ngx.var.arg_guid then
          ngx.log(ngx.ERR, "post_event from log_by_lua returned ", tostring(ok), ", ", tostring(info))
        end
      }
    }

    # A CorrelatedEvent posted (with retries) from log_by_lua: deferred, keyed by its key.
    location = /log-correlated {
      content_by_lua_block { ngx.say("answered") }
      log_by_lua_block {
        local ok, info = package.loaded.lh_client:post_correlated_event(ngx.var.arg_guid, "nginx-corr",
          { n = tonumber(ngx.var.arg_guid:match("%d+$")) })
        if ok ~= true or not info.deferred or info.key ~= ngx.var.arg_guid then
          ngx.log(ngx.ERR, "post_correlated_event from log_by_lua returned ", tostring(ok), ", ", tostring(info))
        end
      }
    }

    # A read from log_by_lua: it cannot have its reply there, so it raises.
    location = /log-read {
      content_by_lua_block { ngx.say("answered") }
      log_by_lua_block {
        package.loaded.lh_client:get_external_event { wf_run_id = "x", external_event_def_name = "nginx-event", guid = "x" }
      }
    }

    # Retries with a zero backoff against a port nobody listens on.
    location = /retry-nowhere {
      content_by_lua_block {
        local c = package.loaded.nowhere or require("littlehorse").client { target = "127.0.0.1:1", timeout = 1 }
        package.loaded.nowhere = c
        local ev, err = c:post_event("w", "nginx-event", 1, { retry = { attempts = 4, initial_backoff = 0, max_backoff = 0 } })
        ngx.say(ev and "stored" or (err.code .. " after " .. tostring(err.attempts)))
      }
    }
  }
]]

-- One nginx with the example config, in a fresh prefix. o: a function setup(n), run before it
-- starts, or a table { setup =, worker_connections = n, vars = { NAME = value } } (vars fill
-- the ${NAME} placeholders of TEST_SERVER).
local function start_nginx(lh_port, o)
  if type(o) == "function" then o = { setup = o } end
  o = o or {}
  local setup = o.setup
  local n = { prefix = io.popen("mktemp -d /tmp/lh-nginx.XXXXXX"):read("*l"), port = free_port(), test_port = free_port() }
  local p = n.prefix
  assert(sh(string.format("mkdir -p %s/conf %s/logs %s/tmp && chmod 755 %s && chmod 1777 %s/tmp && " ..
                          "cp -R %s %s/lua_modules && chmod -R a+rX %s/lua_modules",
                          q(p), q(p), q(p), q(p), q(p), q(LJ), q(p), q(p))))
  n.wake_dir = p .. "/tmp/wake"
  if setup then setup(n) end
  local mods = p .. "/lua_modules"
  local vars = {
    PORT = tostring(n.port), TEST_PORT = tostring(n.test_port), LH_TARGET = "127.0.0.1:" .. lh_port,
    WAKE_DIR = n.wake_dir, HOLD_S = tostring(HOLD_S),
    LUA_PATH = mods .. "/share/lua/5.1/?.lua;" .. mods .. "/share/lua/5.1/?/init.lua",
    LUA_CPATH = mods .. "/lib/lua/5.1/?.so", OAUTH_URL = "http://127.0.0.1:1/token",
  }
  for k, v in pairs(o.vars or {}) do vars[k] = v end
  local conf, added = read_file(ROOT .. "/examples/nginx/nginx.conf"):gsub("}%s*$", function() return TEST_SERVER .. "}\n" end)
  assert(added == 1, "examples/nginx/nginx.conf does not end with the http block's }")
  if o.worker_connections then
    local n_wc
    conf, n_wc = conf:gsub("worker_connections%s+%d+;", "worker_connections " .. o.worker_connections .. ";")
    assert(n_wc == 1, "no worker_connections in examples/nginx/nginx.conf")
  end
  conf = conf:gsub("%${([%w_]+)}", function(k) return vars[k] end) -- unknown names stay as they are
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
  assert(wait_for(function() return n.master_pid() and #n.worker_pids() > 0 end, 5), "nginx did not start")
  return n
end

-- The effective uid a process runs as.
local function euid_of(pid)
  return tonumber(read_file("/proc/" .. pid .. "/status"):match("\nUid:%s*%d+%s+(%d+)"))
end

-- One POST /event on its own connection; the status code.
local function post_one(port, wf, guid)
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(10)
  assert(conn:send("POST /event?wf=" .. wf .. "&guid=" .. guid .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
                   "Content-Length: 7\r\n\r\n{\"a\":1}"))
  local status = assert(conn:receive("*l"))
  conn:close()
  return tonumber(status:match("^HTTP/1%.1 (%d+)"))
end

local function log_lines(log, level)
  local found = {}
  for line in log:gmatch("[^\n]+") do
    if line:find("[" .. level .. "]", 1, true) then found[#found + 1] = line end
  end
  return found
end

-- /health latencies (seconds) measured while a batch of requests is in flight, and the batch's
-- status codes.
local function probe_during(get, batch)
  local lat = {}
  local t0 = core.now()
  while not batch:pump() and core.now() - t0 < 30 do
    local st, dt = get("/health")
    assert.equal(200, st)
    lat[#lat + 1] = dt
    socket.select(nil, nil, 0.0005) -- a probe every ~0.5 ms
  end
  return lat, batch:collect(5)
end

local pct = host.pct

-- The worker blocks when /health waits far longer during our calls than during the control's
-- requests, measured in the same run under the same machine load: whatever slows the machine
-- (other processes, both cores busy) slows both, while a worker held by a call (200 ms here)
-- answers no probe for the whole call. Two limits: p90 (most probes: any blocking path shows
-- there) and p99, looser (a few probes: the tail is where scheduling noise lives on a busy
-- machine). Returns ok, a line with the figures.
local function judge(lat, ctl)
  local p90, c90, p99, c99 = pct(lat, 0.9), pct(ctl, 0.9), pct(lat, 0.99), pct(ctl, 0.99)
  local limit90, limit99 = 2 * c90 + 0.005, 3 * c99 + 0.020
  local ms = function(x) return x * 1000 end
  return p90 <= limit90 and p99 <= limit99,
    string.format("p50 %.2f, p90 %.2f, p99 %.2f, max %.2f ms over %d probes; control p50 %.2f, p90 %.2f, p99 %.2f ms; " ..
                  "limits p90 <= 2 x control + 5 = %.2f ms, p99 <= 3 x control + 20 = %.2f ms",
                  ms(pct(lat, 0.5)), ms(p90), ms(p99), ms(lat[#lat]), #lat, ms(pct(ctl, 0.5)), ms(c90), ms(c99),
                  ms(limit90), ms(limit99))
end

describe("nginx + littlehorse (stock Debian nginx, one worker)", function()
  local srv, client, ngx1

  lazy_setup(function()
    srv = devserver.start { defs = { "nginx-event" }, args = { "--delay-ms", tostring(math.floor(HOLD_S * 1000)) } }
    client = lh.client { host = "127.0.0.1", port = srv.port }
    ngx1 = start_nginx(srv.port)
  end)

  lazy_teardown(function()
    if ngx1 then ngx1.stop() end
    if client then client:close() end
    if srv then srv:stop() end
  end)

  it("posts an event through a request handler", function()
    local conn = assert(socket.connect("127.0.0.1", ngx1.port))
    assert(conn:send("POST /event?wf=one&guid=one-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}"))
    local status = assert(conn:receive("*l"))
    assert.matches(" 200 ", status)
    conn:close()
    local ev = assert(client:get_external_event { wf_run_id = "one", external_event_def_name = "nginx-event", guid = "one-1" })
    assert.same({ a = 1 }, ev.content)
    -- the worker made its own private wake directory; its socket is gone once the reader
    -- took its connection (nothing is left to find or clean up)
    local worker = ngx1.worker_pids()[1]
    assert.is_true(sh("test -d " .. q(ngx1.wake_dir) .. " && test ! -L " .. q(ngx1.wake_dir)))
    assert.equal("700", io.popen("stat -c %a " .. q(ngx1.wake_dir)):read("*l"))
    assert.is_false(sh("test -e " .. q(ngx1.wake_dir .. "/lhwake." .. worker .. ".sock")))
  end)

  it("keeps /health answering while 50 posts wait on a 200 ms server (against a control in the same run)", function()
    local waves, per_wave = 6, 50
    local get = prober(ngx1.port)
    get("/health") -- warm
    -- Waves of posts and of control requests alternate, so both see the same machine.
    local lat, ctl = {}, {}
    for w = 1, waves do
      local posts, codes = probe_during(get, post_many(ngx1.port, per_wave, "load" .. w))
      for _, code in ipairs(codes) do assert.equal("200", code) end
      for _, v in ipairs(posts) do lat[#lat + 1] = v end
      local held = probe_during(get, post_many(ngx1.test_port, per_wave, "hold" .. w, "/hold"))
      for _, v in ipairs(held) do ctl[#ctl + 1] = v end
    end
    table.sort(lat)
    table.sort(ctl)
    local ok, figures = judge(lat, ctl)
    print("\n    /health during " .. waves .. " x 50 posts: " .. figures)
    assert.is_true(#lat >= 100 and #ctl >= 100, "too few probes: " .. #lat .. ", " .. #ctl)
    assert.is_true(ok, figures)
    -- The same check on a call path that blocks the worker (5 posts waited for with h:wait())
    -- must fail: it is a real check.
    local blocked, codes = probe_during(get, post_many(ngx1.test_port, 5, "blocking", "/event-blocking"))
    assert.same({ "200", "200", "200", "200", "200" }, codes)
    table.sort(blocked)
    local blocks, bfigures = judge(blocked, ctl)
    print("    /health during 5 blocking posts: " .. bfigures)
    assert.is_false(blocks, "the check did not notice a blocked worker: " .. bfigures)
    -- every event stored exactly once: each guid is there with its own content (read
    -- concurrently: the server takes 200 ms for each)
    local reads = {}
    for w = 1, waves do
      for i = 1, per_wave do
        reads[#reads + 1] = { i, client:get_external_event_async { wf_run_id = "load" .. w,
          external_event_def_name = "nginx-event", guid = "load" .. w .. "-" .. i } }
      end
    end
    for _, r in ipairs(reads) do
      local ev = assert(r[2]:wait(10))
      assert.equal(r[1], ev.content.n)
    end
  end)

  -- One worker that blocked on a call would answer the n requests one after the other, each
  -- holding it for the server's 200 ms at least (n x 200 ms in all); waiting without blocking,
  -- it answers them together. The limit is half the blocking minimum.
  local function concurrent_limit(n, calls_each) return n * calls_each * HOLD_S / 2 end

  it("posts CorrelatedEvents by key concurrently, exactly once, correlated with a waiting WfRun", function()
    local devhook = require "devhook"
    assert(client:put_external_event_def { name = "nginx-corr", correlated_event_config = true })
    assert.equal("OK", devhook.start_waiting(srv.target, { key = "corr-3", def = "nginx-corr", wf_run_id = "wf-corr" }).code)
    local n = 20
    local t0 = core.now()
    local codes, bodies = post_many(ngx1.test_port, n, "corr", "/correlated"):collect(30)
    local secs = core.now() - t0
    for i = 1, n do
      assert.equal("200", codes[i], bodies[i])
      local r = assert(lh.json_decode(bodies[i]), bodies[i])
      assert.same({ key = "corr-" .. i, content = { n = i }, duplicate = false, correlated = i == 3 and 1 or 0 }, r)
    end
    assert.is_true(secs < concurrent_limit(n, 1), string.format("%.2f s for %d correlated posts through one worker", secs, n))
    -- each key is stored once; posting a key again answers with the stored one
    for i = 1, n do
      local ce = assert(client:get_correlated_event { key = "corr-" .. i, external_event_def_name = "nginx-corr" })
      assert.same({ n = i }, ce.content)
    end
    local function post(query, body)
      local conn = assert(socket.connect("127.0.0.1", ngx1.test_port))
      conn:settimeout(10)
      assert(conn:send("POST /correlated?" .. query .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
                       "Content-Length: " .. #body .. "\r\n\r\n" .. body))
      local reply = assert(conn:receive("*a"))
      conn:close()
      return tonumber(reply:match("^HTTP/1%.1 (%d+)")), reply:match("\r\n\r\n(.*)$")
    end
    local status, body = post("guid=corr-3", '{"n":999}')
    assert.equal(200, status, body)
    assert.same({ key = "corr-3", content = { n = 3 }, duplicate = true, correlated = 1 }, lh.json_decode(body))
    -- the server's refusals come back as they do outside nginx: a def without
    -- correlated_event_config, content of another type than a typed def's
    assert(client:put_external_event_def { name = "nginx-typed", content_type = "INT", correlated_event_config = true })
    status, body = post("guid=t1&def=nginx-event", "1")
    assert.equal(502, status)
    assert.matches("^PutCorrelatedEvent: INVALID_ARGUMENT %(3%): .*does not have CorrelatedEvent enabled", body)
    status, body = post("guid=t2&def=nginx-typed", '"seven"')
    assert.equal(502, status)
    assert.matches("^PutCorrelatedEvent: INVALID_ARGUMENT %(3%): Invalid type of content for event", body)
    status, body = post("guid=t3&def=nginx-typed", "7")
    assert.equal(200, status, body)
    assert.equal(7, lh.json_decode(body).content)
    assert.equal(200, (prober(ngx1.port)("/health")))
  end)

  it("follows a WfRun's pages with the iterator, in many requests at once", function()
    local handles = {}
    for i = 1, 5 do
      handles[i] = client:put_external_event_async { wf_run_id = "paged", external_event_def_name = "nginx-event",
                                                     guid = "p" .. i, content = i }
    end
    for _, h in ipairs(handles) do assert(h:wait(10)) end
    -- 5 events two to a page: 3 calls for each request
    local n = 10
    local t0 = core.now()
    local batch = post_many(ngx1.test_port, n, "paged", "/events")
    local codes, bodies = batch:collect(30)
    local secs = core.now() - t0
    for i = 1, n do
      assert.equal("200", codes[i], bodies[i])
      assert.equal("p1,p2,p3,p4,p5", bodies[i])
    end
    assert.is_true(secs < concurrent_limit(n, 3), string.format("%.2f s for %d listings of 3 pages through one worker", secs, n))
  end)

  it("retries with a zero backoff without ngx.sleep(0) (a warning on stock nginx)", function()
    local get = prober(ngx1.test_port)
    local status = get("/retry-nowhere")
    assert.equal(200, status)
    local log = ngx1.log()
    assert.is_nil(log:find("ngx.sleep(0)", 1, true), table.concat(log_lines(log, "warn"), "\n"))
  end)

  it("answers all 10 posts in flight across a reload (HUP) and a stop (QUIT)", function()
    for _, step in ipairs { "HUP", "QUIT" } do
      local old_workers = ngx1.worker_pids()
      local calls_before = srv:stats().put_event
      local batch = post_many(ngx1.port, 10, step:lower())
      -- in flight: the dev server has all 10 calls (it answers each 200 ms after it came)
      assert.is_true(wait_for(function() return srv:stats().put_event >= calls_before + 10 end, 5))
      assert(sh("kill -" .. step .. " " .. ngx1.master_pid()))
      local codes = batch:collect(20)
      assert.same({ "200", "200", "200", "200", "200", "200", "200", "200", "200", "200" }, codes)
      for i = 1, 10 do
        assert(client:get_external_event { wf_run_id = step:lower(), external_event_def_name = "nginx-event",
                                           guid = step:lower() .. "-" .. i })
      end
      -- the old worker exits once its requests are done, and removes its wake socket
      assert.is_true(wait_for(function() return not sh("kill -0 " .. old_workers[1] .. " 2>/dev/null") end, 10))
      assert.is_false(sh("test -e " .. q(ngx1.wake_dir .. "/lhwake." .. old_workers[1] .. ".sock")))
      if step == "HUP" then
        assert.is_true(wait_for(function()
          local w = ngx1.worker_pids()
          return #w > 0 and w[1] ~= old_workers[1]
        end, 10), "no new worker after HUP")
      end
    end
    local log = ngx1.log()
    for _, level in ipairs { "alert", "error", "crit", "emerg" } do
      assert.same({}, log_lines(log, level))
    end
  end)
end)

-- /health latencies during `batch` (posts made by make_batch()) and during a control batch of
-- as many requests held by /hold, waves alternating; sorted, with the judge's verdict.
local function health_against_control(n, waves, make_batch)
  local get = prober(n.port)
  get("/health") -- warm
  local lat, ctl = {}, {}
  for w = 1, waves do
    local posts, codes = probe_during(get, make_batch(w))
    for _, code in ipairs(codes) do assert.equal("200", code) end
    for _, v in ipairs(posts) do lat[#lat + 1] = v end
    local held = probe_during(get, post_many(n.test_port, 50, "hold" .. w, "/hold"))
    for _, v in ipairs(held) do ctl[#ctl + 1] = v end
  end
  table.sort(lat)
  table.sort(ctl)
  local ok, figures = judge(lat, ctl)
  assert.is_true(#lat >= 100 and #ctl >= 100, "too few probes: " .. #lat .. ", " .. #ctl .. "; " .. figures)
  return ok, figures
end

-- Reads (get_external_event, concurrently) until every event wf/guid-1..n is stored with
-- content.n == i, or `limit` seconds pass; true when all are.
local function all_stored(client, wf, n, limit)
  local t0, missing = core.now(), {}
  for i = 1, n do missing[i] = true end
  repeat
    local reads = {}
    for i in pairs(missing) do
      reads[i] = client:get_external_event_async { wf_run_id = wf, external_event_def_name = "nginx-event", guid = wf .. "-" .. i }
    end
    for i, h in pairs(reads) do
      local ev = h:wait(10)
      if ev then
        assert.equal(i, ev.content.n)
        missing[i] = nil
      end
    end
  until next(missing) == nil or core.now() - t0 > limit
  return next(missing) == nil
end

describe("nginx + littlehorse: OAuth tokens from a slow token endpoint", function()
  local srv, client, ts, n, tokens

  lazy_setup(function()
    tokens = os.tmpname()
    ts = token_server.start { client_id = "lh-client", client_secret = "lh-secret", delay_ms = 1000, token_file = tokens }
    srv = devserver.start { defs = { "nginx-event" }, args = { "--token-file", tokens } }
    local tok = assert(ts:fetch())
    client = lh.client { host = "127.0.0.1", port = srv.port, token = tok.access_token }
    n = start_nginx(srv.port, { vars = { OAUTH_URL = ts.token_url } })
  end)

  lazy_teardown(function()
    if n then n.stop() end
    if client then client:close() end
    if srv then srv:stop() end
    if ts then ts:stop() end
    if tokens then os.remove(tokens) end
  end)

  it("fetches one token for 50 concurrent requests without blocking the worker (/health against a control)", function()
    local before = ts:stats().requests
    local ok, figures = health_against_control(n, 1, function() return post_many(n.test_port, 50, "oauth", "/event-oauth") end)
    print("\n    /health while 50 posts wait for a 1 s token fetch: " .. figures)
    assert.is_true(ok, figures)
    assert.equal(1, ts:stats().requests - before, "one token request for the worker, shared by its requests")
    local stored = 0
    for i = 1, 50 do
      if client:get_external_event { wf_run_id = "oauth", external_event_def_name = "nginx-event", guid = "oauth-" .. i } then
        stored = stored + 1
      end
    end
    assert.equal(50, stored)
    for _, level in ipairs { "alert", "error", "crit", "emerg" } do assert.same({}, log_lines(n.log(), level)) end
  end)
end)

describe("nginx + littlehorse: phases that cannot wait, and waits that hold no connection", function()
  local srv, client, n

  lazy_setup(function()
    srv = devserver.start { defs = { "nginx-event" }, args = { "--delay-ms", tostring(math.floor(HOLD_S * 1000)) } }
    client = lh.client { host = "127.0.0.1", port = srv.port }
    n = start_nginx(srv.port)
  end)

  lazy_teardown(function()
    if n then n.stop() end
    if client then client:close() end
    if srv then srv:stop() end
  end)

  it("posts from log_by_lua without blocking the worker: 50 posts in flight at once, every event stored", function()
    local before = srv:stats().put_event
    local t0 = core.now()
    -- each request is answered before its log phase runs, so all 200 whatever the log phase does
    local codes = post_many(n.test_port, 50, "log", "/log-post"):collect(30)
    for i, code in ipairs(codes) do assert.equal("200", code, "request " .. i) end
    -- The dev server holds each post 200 ms: a log phase that waited for its post would make
    -- them one after another, 50 x 0.2 = 10 s until the last one arrives. A third of that is
    -- the line (here they all arrive within a few ms of each other).
    assert.is_true(wait_for(function() return srv:stats().put_event >= before + 50 end, 30))
    local took = core.now() - t0
    print(string.format("\n    50 posts from log_by_lua all reached the server after %.3f s", took))
    assert.is_true(took < 10 / 3, "the posts took " .. took .. " s to reach the server")
    assert.is_true(all_stored(client, "log", 50, 20), "events missing")
    for _, level in ipairs { "alert", "error", "crit", "emerg" } do assert.same({}, log_lines(n.log(), level)) end
  end)

  it("posts CorrelatedEvents from log_by_lua: deferred by key, every one stored", function()
    assert(client:put_external_event_def { name = "nginx-corr", correlated_event_config = true })
    local codes = post_many(n.test_port, 20, "lcorr", "/log-correlated"):collect(30)
    for i, code in ipairs(codes) do assert.equal("200", code, "request " .. i) end
    local missing
    assert.is_true(wait_for(function()
      missing = 0
      for i = 1, 20 do
        local ce = client:get_correlated_event { key = "lcorr-" .. i, external_event_def_name = "nginx-corr" }
        if not ce then missing = missing + 1 else assert.same({ n = i }, ce.content) end
      end
      return missing == 0
    end, 20), "CorrelatedEvents missing")
    for _, level in ipairs { "alert", "error", "crit", "emerg" } do assert.same({}, log_lines(n.log(), level)) end
  end)

  it("raises for a read in log_by_lua, naming the phase and the caller's line", function()
    local get = prober(n.test_port)
    assert.equal(200, get("/log-read"))
    local line
    assert.is_true(wait_for(function()
      line = log_lines(n.log(), "error")[1]
      return line ~= nil
    end, 5))
    assert.matches("log_by_lua%(nginx%.conf:%d+%):%d+: littlehorse: get_external_event cannot wait for its reply in "
                   .. "nginx's log phase", line)
    assert.matches("ngx.timer.at(0, fn)", line, 1, true)
  end)

  it("waits for 50 calls with worker_connections 64 (no connection per waiting call)", function()
    local small = start_nginx(srv.port, { worker_connections = 64 })
    local ok, err = pcall(function()
      for w = 1, 2 do
        local codes = post_many(small.port, 50, "small" .. w):collect(20)
        for i, code in ipairs(codes) do assert.equal("200", code, "post " .. i .. " of wave " .. w) end
      end
      for _, level in ipairs { "alert", "error", "crit", "emerg" } do assert.same({}, log_lines(small.log(), level)) end
    end)
    small.stop()
    assert(ok, err)
  end)
end)

-- The wake directory is private to the worker's user or not used at all: a directory made
-- first by another user, or a symbolic link, is refused with an [error] line naming the fix,
-- and calls still work (ngx.sleep polling).
local AS_ROOT = io.popen("id -u"):read("*l") == "0"

describe("nginx + littlehorse: a wake directory it cannot trust", function()
  local srv, worker_uid

  lazy_setup(function()
    srv = devserver.start { defs = { "nginx-event" } }
    -- the user nginx runs its workers as here (nobody, when started as root)
    local probe = start_nginx(srv.port)
    worker_uid = euid_of(probe.worker_pids()[1])
    probe.stop()
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function refused(setup, why)
    local n = start_nginx(srv.port, setup)
    local ok, err = pcall(function()
      assert.equal(200, post_one(n.port, "untrusted", (why:gsub("%W", "-"))))
      local lines = log_lines(n.log(), "error")
      assert.equal(1, #lines, n.log())
      assert.matches("refusing the wake directory: the wake directory [^ ]*/tmp/wake " .. why, lines[1])
      assert.matches("Fix: remove it, or set require%(\"littlehorse.resty\"%)%.wake_dir", lines[1])
      return n
    end)
    n.stop()
    assert(ok, err)
  end

  ;(AS_ROOT and it or pending)("refuses one another user made first", function()
    refused(function(n)
      -- root made it, private: to the worker user (nobody) it is someone else's
      assert(worker_uid ~= 0, "workers run as root here")
      assert(sh("mkdir -m 700 " .. q(n.wake_dir)))
    end, "is owned by uid 0")
  end)

  it("refuses a symbolic link (even to a directory of the worker's own)", function()
    refused(function(n)
      local target = n.prefix .. "/tmp/elsewhere"
      assert(sh("mkdir -m 700 " .. q(target) .. " && chown " .. worker_uid .. " " .. q(target) ..
                " && ln -s " .. q(target) .. " " .. q(n.wake_dir)))
    end, "is a symbolic link")
  end)
end)
