-- Start and stop the dev server (build/lh-devserver) as a real process for specs.
--   local devserver = require "devserver"
--   local srv = devserver.start { defs = { "my-event" } }   -- srv.port, srv.pid, srv.target
--   srv:stop()
-- Also: srv:kill("KILL") (any signal; waits for a terminating one to take effect),
-- srv:restart() (a new process, same port and arguments), srv:stats() (SIGUSR1 -> the
-- server's counters as a table: accepted, open, events, ...), srv:log().
local core = require "littlehorse.core"
local sh = require "sh"
local rt = require "runtime"

local M = {}
local BIN = os.getenv("LH_DEVSERVER") or "./build/lh-devserver"

local read_file = sh.read_file

local shell_quote = sh.q

local Server = {}
Server.__index = Server

-- Running, and not a zombie: the server is started in the background by a shell that exits at
-- once, so it is reaped by init, which may take a while after it has really stopped.
function Server:alive()
  local stat = read_file("/proc/" .. self.pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- SIGTERM, then wait (up to `within` seconds) for the process to be gone.
function Server:stop(within)
  if self.stopped then return true end
  self.stopped = true
  if not self.dead then rt.execute("kill -TERM " .. self.pid .. " 2>/dev/null") end
  local deadline = os.time() + (within or 5)
  while not self.dead and self:alive() do
    if os.time() > deadline then
      rt.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
      break
    end
    core.sleep(0.01)
  end
  os.remove(self.out)
  os.remove(self.pidfile)
  return true
end

function Server:log() return read_file(self.out) or "" end

local STOPPING = { KILL = true, TERM = true, INT = true, ["9"] = true, ["15"] = true, ["2"] = true }

-- Sends a signal (name like "KILL" or number; default KILL). For one that ends the process,
-- waits (up to `within` seconds) until it is gone, so the port and the --store file are free.
function Server:kill(sig, within)
  sig = tostring(sig or "KILL")
  rt.execute("kill -" .. sig .. " " .. self.pid .. " 2>/dev/null")
  if not STOPPING[sig] then return true end
  local deadline = core.now() + (within or 5)
  while self:alive() and core.now() < deadline do core.sleep(0.005) end
  self.dead = not self:alive() -- its pid is not signalled again (it may be reused)
  return self.dead
end

-- SIGUSR1 and wait for the next "STATS seq=N k=v ..." line: { seq =, accepted =, open =,
-- events =, defs =, calls =, failed =, store_then_failed =, exhausted =, dropped =, ... }.
function Server:stats(within)
  self.stats_seq = (self.stats_seq or 0) + 1
  rt.execute("kill -USR1 " .. self.pid .. " 2>/dev/null")
  local deadline = core.now() + (within or 5)
  repeat
    for line in (read_file(self.out) or ""):gmatch("STATS ([^\n]*)\n") do
      local t = {}
      for k, v in line:gmatch("([%w_]+)=(%-?%d+)") do t[k] = tonumber(v) end
      if t.seq == self.stats_seq then return t end
    end
    core.sleep(0.005)
  until core.now() > deadline
  error("dev server printed no STATS line: " .. self:log())
end

local function launch(opts, srv)
  local out = os.tmpname()
  local pidfile = os.tmpname()
  local args = { BIN, "--port", tostring(opts.port or 0) }
  for _, d in ipairs(opts.defs or {}) do args[#args + 1] = "--def"; args[#args + 1] = d end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = shell_quote(a) end
  -- `$!` is the server's own pid (the shell execs nothing else), so stop() signals it directly.
  local cmd = string.format("%s >%s 2>&1 & echo $! >%s", table.concat(args, " "), out, pidfile)
  assert(rt.execute(cmd))
  local pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  assert(pid, "dev server did not start")
  srv = srv or setmetatable({}, Server)
  srv.pid, srv.out, srv.pidfile, srv.opts = pid, out, pidfile, opts
  srv.stopped, srv.dead, srv.stats_seq = nil, nil, 0
  for _ = 1, 500 do
    local host, port = (read_file(out) or ""):match("LISTENING ([^\n]+):(%d+)")
    if port then
      srv.host, srv.port = host, tonumber(port)
      srv.target = host .. ":" .. port
      return srv
    end
    if not srv:alive() then break end
    core.sleep(0.01)
  end
  local log = srv:log()
  srv:stop()
  error("dev server did not report LISTENING: " .. log)
end

-- A new process with the same arguments on the same port (after stop() or kill()); the
-- object is updated in place (pid, log). Stops the old process first if it still runs.
function Server:restart()
  self:stop()

  local opts = {}
  for k, v in pairs(self.opts) do opts[k] = v end
  opts.port = self.port
  return launch(opts, self)
end

-- opts: defs = { names }, port = n (default 0: any free port), args = { extra CLI args }
function M.start(opts)
  return launch(opts or {})
end

-- A dev server and a Lua client connected to it, the set-up most specs share:
--   lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 5) end)
--   lazy_teardown(function() devserver.release(srv, client) end)
-- release closes the clients given, then stops the server; any of them may be nil (a set-up
-- that failed half-way).
function M.with_client(opts, timeout)
  local srv = M.start(opts)
  local ok, client = pcall(require("littlehorse").client,
                           { host = "127.0.0.1", port = srv.port, timeout = timeout or 5 })
  if not ok then
    srv:stop()
    error(client, 0)
  end
  return srv, client
end

function M.release(srv, ...)
  for i = 1, select("#", ...) do
    local c = select(i, ...)
    if c then c:close() end
  end
  if srv then srv:stop() end
end

return M
