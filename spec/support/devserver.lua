-- Start and stop the dev server (build/lh-devserver) as a real process for specs.
--   local devserver = require "devserver"
--   local srv = devserver.start { defs = { "my-event" } }   -- srv.port, srv.pid, srv.target
--   srv:stop()
local core = require "littlehorse.core"

local M = {}
local BIN = os.getenv("LH_DEVSERVER") or "./build/lh-devserver"

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

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
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local deadline = os.time() + (within or 5)
  while self:alive() do
    if os.time() > deadline then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
      break
    end
    core.sleep(0.01)
  end
  os.remove(self.out)
  os.remove(self.pidfile)
  return true
end

function Server:log() return read_file(self.out) or "" end

-- opts: defs = { names }, port = n (default 0: any free port), args = { extra CLI args }
function M.start(opts)
  opts = opts or {}
  local out = os.tmpname()
  local pidfile = os.tmpname()
  local args = { BIN, "--port", tostring(opts.port or 0) }
  for _, d in ipairs(opts.defs or {}) do args[#args + 1] = "--def"; args[#args + 1] = d end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = shell_quote(a) end
  -- `$!` is the server's own pid (the shell execs nothing else), so stop() signals it directly.
  local cmd = string.format("%s >%s 2>&1 & echo $! >%s", table.concat(args, " "), out, pidfile)
  assert(os.execute(cmd))
  local pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  assert(pid, "dev server did not start")
  local srv = setmetatable({ pid = pid, out = out, pidfile = pidfile }, Server)
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

return M
