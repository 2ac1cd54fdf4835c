-- Debian's nginx + lua module as a real process for specs, from a config template with
-- ${NAME} placeholders (examples/nginx/*.conf): a fresh prefix holding a copy of the LuaJIT build
-- of the rock (readable by the worker user, nobody when the specs run as root), a port of its
-- own, and LUA_PATH / LUA_CPATH / WAKE_DIR / PORT filled in.
--   local host = require "nginx_host"
--   local n = host.start(template_text, { LH_TARGET = ..., OUTBOX = ... }, { workers = 2 })
--   n.port, n.master_pid(), n.worker_pids(), n.log(), n.signal("HUP"), n.quit(), n.start(), n.stop()
--   local get = host.prober(n.port); local status, seconds = get("/health")
-- Needs luasocket and the LuaJIT build (scripts/build-lua.sh luajit).
local socket = require "socket"
local core = require "littlehorse.core"
local files = require "sh"

local q = files.q
local M = {}

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_file(path) return files.read_file(path) or "" end

function M.wait_for(pred, limit)
  local t0 = core.now()
  while core.now() - t0 < limit do
    if pred() then return true end
    core.sleep(0.02)
  end
  return pred()
end
local wait_for = M.wait_for

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local port = select(2, s:getsockname())
  s:close()
  return port
end

-- A prober: HTTP/1.1 GETs on a kept-alive luasocket connection, reconnecting when nginx
-- closes it (keepalive_requests); each call returns status, seconds taken (connect included).
-- timeout: each receive's, in seconds (default 10).
function M.prober(port, timeout)
  local conn
  return function(path)
    local t0 = socket.gettime()
    for _ = 1, 2 do
      if not conn then
        conn = assert(socket.connect("127.0.0.1", port))
        conn:settimeout(timeout or 10)
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

-- The p-quantile (0..1) of a sorted list of latencies.
function M.pct(lat, p) return lat[math.max(1, math.ceil(#lat * p))] end

local function alive(pid)
  local stat = files.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end
M.alive = alive

-- template: the config text; vars: placeholder values (PORT, WAKE_DIR, LUA_PATH and LUA_CPATH
-- are added); opts.workers: how many worker processes start() waits for (default 2).
function M.start(template, vars, opts)
  opts = opts or {}
  local root = os.getenv("PWD")
  local lj = root .. "/build/lua/luajit/lua_modules"
  local p = io.popen("mktemp -d /tmp/lh-nginx-host.XXXXXX"):read("*l")
  local n = { prefix = p, port = M.free_port(), workers = opts.workers or 2 }
  assert(sh(string.format("mkdir -p %s/conf %s/logs %s/tmp && chmod 755 %s && chmod 1777 %s/tmp && " ..
                          "cp -R %s %s/lua_modules && chmod -R a+rX %s/lua_modules",
                          q(p), q(p), q(p), q(p), q(p), q(lj), q(p), q(p))))
  local mods = p .. "/lua_modules"
  local all = {
    PORT = tostring(n.port), WAKE_DIR = p .. "/tmp/wake",
    LUA_PATH = mods .. "/share/lua/5.1/?.lua;" .. mods .. "/share/lua/5.1/?/init.lua",
    LUA_CPATH = mods .. "/lib/lua/5.1/?.so",
  }
  for k, v in pairs(vars) do all[k] = v end
  local conf = template:gsub("%${([%w_]+)}", function(k) return all[k] end)
  local f = assert(io.open(p .. "/conf/nginx.conf", "w"))
  f:write(conf)
  f:close()

  local function nginx(args)
    return sh(string.format("nginx -p %s/ -c conf/nginx.conf -e logs/error.log %s 2>>%s/logs/stderr.log", q(p), args or "",
                            q(p)))
  end
  function n.master_pid() return tonumber(read_file(p .. "/logs/nginx.pid"):match("%d+")) end
  -- the master's children (the workers; no cache processes in these configs)
  function n.worker_pids()
    local pids = {}
    local pp = io.popen("pgrep -P " .. (n.master_pid() or 0))
    for line in pp:read("*a"):gmatch("%d+") do pids[#pids + 1] = tonumber(line) end
    pp:close()
    return pids
  end
  function n.log() return read_file(p .. "/logs/error.log") end
  function n.signal(sig)
    local pid = assert(n.master_pid(), "nginx is not running")
    return sh("kill -" .. sig .. " " .. pid)
  end
  -- nginx started on the same prefix and port, once `workers` workers run.
  function n.start()
    assert(nginx(), read_file(p .. "/logs/stderr.log"))
    assert(wait_for(function() return n.master_pid() and #n.worker_pids() == n.workers end, 10),
           "nginx did not start: " .. read_file(p .. "/logs/stderr.log"))
    n.master = n.master_pid()
  end
  -- SIGQUIT (graceful stop); returns a function telling whether the master is gone.
  function n.quit()
    local pid = assert(n.master_pid(), "nginx is not running")
    sh("kill -QUIT " .. pid)
    return function() return not alive(pid) end
  end
  function n.stop()
    local pid = n.master_pid() or n.master
    if pid and alive(pid) then
      local workers = n.worker_pids()
      sh("kill -QUIT " .. pid .. " 2>/dev/null")
      wait_for(function() return not alive(pid) end, 10)
      if alive(pid) then sh("kill -KILL " .. pid .. " 2>/dev/null") end
      for _, w in ipairs(workers) do -- a master killed leaves its workers running
        if alive(w) then sh("kill -KILL " .. w .. " 2>/dev/null") end
      end
    end
    sh("rm -rf " .. q(p))
  end
  assert(nginx("-t -q"), read_file(p .. "/logs/stderr.log"))
  n.start()
  return n
end

return M
