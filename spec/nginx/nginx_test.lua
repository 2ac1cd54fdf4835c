-- OpenResty integration, for real: Debian's nginx + lua module, started by hand on loopback
-- with examples/nginx/nginx.conf, against a dev server that answers slowly (200 ms).
-- Run by scripts/suites/nginx.sh (busted --run=nginx), after the LuaJIT build of the rock.
local socket = require "socket"
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local files = require "sh"

local ROOT = os.getenv("PWD")
local LJ = ROOT .. "/build/lua/luajit/lua_modules"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_file(path) return files.read_file(path) or "" end -- "" when missing

-- A prober: HTTP/1.1 GETs on a kept-alive luasocket connection, reconnecting when nginx
-- closes it (keepalive_requests); each call returns status, seconds taken (connect included).
local function prober(port)
  local conn
  return function(path)
    local t0 = socket.gettime()
    for _ = 1, 2 do
      if not conn then
        conn = assert(socket.connect("127.0.0.1", port))
        conn:settimeout(5)
      end
      local ok = conn:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local line = ok and conn:receive("*l")
      if line then
        local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
        local len, close = 0, false
        while true do
          local h = assert(conn:receive("*l"))
          if h == "" then break end
          len = tonumber(h:lower():match("^content%-length:%s*(%d+)")) or len
          close = close or h:lower():match("^connection:%s*close") ~= nil
        end
        if len > 0 then assert(conn:receive(len)) end
        if close then conn:close(); conn = nil end
        return status, socket.gettime() - t0
      end
      conn:close()
      conn = nil
    end
    error("GET " .. path .. " failed twice")
  end
end

-- n POSTs to /event, all sent before this returns (each on its own connection), read back
-- later with :collect(); one process, no helpers, so nothing else competes for the CPU.
local function wait_file(path, limit)
  local t0 = core.now()
  while core.now() - t0 < limit do
    local f = io.open(path)
    if f then f:close() return true end
    core.sleep(0.02)
  end
  return false
end

local function post_many(port, n, wf)
  local conns = {}
  for i = 1, n do
    local c = assert(socket.connect("127.0.0.1", port))
    local body = '{"n":' .. i .. '}'
    assert(c:send(string.format("POST /event?wf=%s&guid=%s-%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
                                "Content-Length: %d\r\n\r\n%s", wf, wf, i, #body, body)))
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
    local codes = {}
    for i, c in ipairs(self.conns) do
      codes[i] = table.concat(c.buf):match("^HTTP/1%.1 (%d+)") or "none"
    end
    return codes
  end
  return batch
end

describe("nginx + littlehorse (stock Debian nginx, one worker)", function()
  local srv, prefix, port, client

  local function nginx(args)
    return sh(string.format("nginx -p %s/ -c conf/nginx.conf -e logs/error.log %s 2>>%s/logs/stderr.log", prefix, args or "", prefix))
  end
  local function master_pid() return tonumber(read_file(prefix .. "/logs/nginx.pid"):match("%d+")) end
  local function worker_pids()
    local pids = {}
    local p = io.popen("pgrep -P " .. (master_pid() or 0))
    for line in p:read("*a"):gmatch("%d+") do pids[#pids + 1] = tonumber(line) end
    p:close()
    return pids
  end

  lazy_setup(function()
    srv = devserver.start { defs = { "nginx-event" }, args = { "--delay-ms", "200" } }
    client = lh.client { host = "127.0.0.1", port = srv.port }
    local tmp = io.popen("mktemp -d /tmp/lh-nginx.XXXXXX"):read("*l")
    prefix = tmp
    assert(sh("mkdir -p " .. prefix .. "/conf " .. prefix .. "/logs " .. prefix .. "/wake && chmod 777 " .. prefix .. "/wake && chmod 755 " .. prefix))
    -- a free port: bind 0, read it, close
    local s = assert(socket.bind("127.0.0.1", 0))
    port = select(2, s:getsockname())
    s:close()
    local conf = read_file(ROOT .. "/examples/nginx/nginx.conf")
    local vars = {
      PORT = tostring(port), LH_TARGET = "127.0.0.1:" .. srv.port, WAKE_DIR = prefix .. "/wake",
      LUA_PATH = LJ .. "/share/lua/5.1/?.lua;" .. LJ .. "/share/lua/5.1/?/init.lua",
      LUA_CPATH = LJ .. "/lib/lua/5.1/?.so",
    }
    conf = conf:gsub("%${([%w_]+)}", function(k) return vars[k] end) -- unknown names stay as they are
    local f = assert(io.open(prefix .. "/conf/nginx.conf", "w"))
    f:write(conf)
    f:close()
    assert(nginx("-t -q"), read_file(prefix .. "/logs/stderr.log"))
    assert(nginx(), read_file(prefix .. "/logs/stderr.log"))
    assert(wait_file(prefix .. "/logs/nginx.pid", 5))
  end)

  lazy_teardown(function()
    local pid = prefix and master_pid()
    if pid then
      sh("kill -QUIT " .. pid)
      local t0 = core.now()
      while sh("kill -0 " .. pid .. " 2>/dev/null") and core.now() - t0 < 10 do core.sleep(0.05) end
      sh("kill -KILL " .. pid .. " 2>/dev/null")
    end
    if client then client:close() end
    if srv then srv:stop() end
    if prefix then sh("rm -rf " .. prefix) end
  end)

  it("posts an event through a request handler", function()
    local conn = assert(socket.connect("127.0.0.1", port))
    assert(conn:send("POST /event?wf=one&guid=one-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}"))
    local status = assert(conn:receive("*l"))
    assert.matches(" 200 ", status)
    conn:close()
    local ev = assert(client:get_external_event { wf_run_id = "one", external_event_def_name = "nginx-event", guid = "one-1" })
    assert.same({ a = 1 }, ev.content)
  end)

  it("keeps /health answering (p99 < 5 ms) while 50 posts wait on a 200 ms server", function()
    local waves, per_wave = 5, 50
    local lat = {}
    local get = prober(port)
    get("/health") -- warm
    for w = 1, waves do
      local batch = post_many(port, per_wave, "load" .. w)
      local t0 = core.now()
      while not batch:pump() and core.now() - t0 < 15 do
        local st, dt = get("/health")
        assert.equal(200, st)
        lat[#lat + 1] = dt
        socket.select(nil, nil, 0.0005) -- a probe every ~0.5 ms
      end
      for _, code in ipairs(batch:collect(5)) do assert.equal("200", code) end
    end
    table.sort(lat)
    local p50, p99 = lat[math.ceil(#lat * 0.5)], lat[math.ceil(#lat * 0.99)]
    print(string.format("\n    /health during %d x 50 posts: %d probes, p50 %.2f ms, p99 %.2f ms, max %.2f ms",
      waves, #lat, p50 * 1000, p99 * 1000, lat[#lat] * 1000))
    assert.is_true(#lat >= 100, "too few probes: " .. #lat)
    assert.is_true(p99 < 0.005, string.format("p99 %.2f ms", p99 * 1000))
    -- every event stored exactly once: each guid is there with its own content
    for w = 1, waves do
      for i = 1, per_wave do
        local ev = assert(client:get_external_event { wf_run_id = "load" .. w, external_event_def_name = "nginx-event",
                                                      guid = "load" .. w .. "-" .. i })
        assert.equal(i, ev.content.n)
      end
    end
  end)

  it("answers all 10 posts in flight across a reload (HUP) and a stop (QUIT)", function()
    for _, step in ipairs { "HUP", "QUIT" } do
      local old_workers = worker_pids()
      local batch = post_many(port, 10, step:lower())
      core.sleep(0.05) -- in flight: the server answers after 200 ms
      assert(sh("kill -" .. step .. " " .. master_pid()))
      local codes = batch:collect(20)
      assert.same({ "200", "200", "200", "200", "200", "200", "200", "200", "200", "200" }, codes)
      for i = 1, 10 do
        assert(client:get_external_event { wf_run_id = step:lower(), external_event_def_name = "nginx-event",
                                           guid = step:lower() .. "-" .. i })
      end
      -- the old worker exits once its requests are done, and removes its wake socket
      local t0 = core.now()
      while core.now() - t0 < 10 and sh("kill -0 " .. old_workers[1] .. " 2>/dev/null") do core.sleep(0.05) end
      assert.is_false(sh("kill -0 " .. old_workers[1] .. " 2>/dev/null"))
      assert.is_nil(io.open(prefix .. "/wake/lhwake." .. old_workers[1] .. ".sock"))
      if step == "HUP" then core.sleep(0.3) end
    end
    local log = read_file(prefix .. "/logs/error.log")
    assert.is_nil(log:match("%[alert%][^\n]*"), log:match("%[alert%][^\n]*"))
    assert.is_nil(log:match("%[error%][^\n]*"), log:match("%[error%][^\n]*"))
    assert.is_nil(log:match("%[crit%][^\n]*"), log:match("%[crit%][^\n]*"))
    assert.is_nil(log:match("%[emerg%][^\n]*"), log:match("%[emerg%][^\n]*"))
  end)
end)
