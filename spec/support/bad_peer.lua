-- Start and stop misbehaving peers (spec/support/bad_peer.py) for the specs.
--   local bad_peer = require "bad_peer"
--   local p = bad_peer.start("silent")      -- p.port, p.pid, p.target
--   p:log()                                 -- what the peer printed ("CONN 1", "CALL 42 bytes", ...)
--   p:kill()                                -- SIGKILL now; p:stop() is SIGTERM then SIGKILL
-- The peer runs under Debian's /usr/bin/python3 (the gRPC modes need python3-grpcio, which
-- `bad_peer.have_grpc()` checks), without the sanitizer preload of the process running the specs.
local core = require "littlehorse.core"
local sh = require "sh"
local rt = require "runtime"

local M = {}
local SCRIPT = "spec/support/bad_peer.py"
local PYTHON = os.getenv("LH_PYTHON") or "/usr/bin/python3"

local read_file = sh.read_file

local q = sh.q

-- Processes started here must not inherit sanitizer or valgrind settings meant for the Lua
-- process under test (they would slow the peer and write reports of their own).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS"

local Peer = {}
Peer.__index = Peer

function Peer:alive()
  local stat = read_file("/proc/" .. self.pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

function Peer:log() return read_file(self.out) or "" end

local function wait_gone(self, within)
  local deadline = core.now() + within
  while self:alive() and core.now() < deadline do core.sleep(0.01) end
  return not self:alive()
end

function Peer:kill()
  if not self.stopped then rt.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  wait_gone(self, 5)
  return self
end

function Peer:stop()
  if self.stopped then return true end
  rt.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  if not wait_gone(self, 3) then self:kill() end
  self.stopped = true
  os.remove(self.out)
  os.remove(self.pidfile)
  return true
end

-- Kill the peer `after` seconds from now, from a background shell (the spec's own thread is
-- blocked in a call by then).
function Peer:kill_after(after)
  rt.execute(string.format("(sleep %.3f; kill -KILL %d) >/dev/null 2>&1 &", after, self.pid))
end

local grpc_ok
function M.have_grpc()
  if grpc_ok == nil then
    grpc_ok = rt.execute(CLEAN_ENV .. " " .. PYTHON .. " -c 'import grpc' >/dev/null 2>&1") == true
  end
  return grpc_ok
end

-- Make sure Debian's python3-grpcio is there (installed on a fresh machine by
-- scripts/deps-extra.sh, like every other package); returns true, or nil and why not.
function M.ensure_grpc()
  if M.have_grpc() then return true end
  rt.execute("sh scripts/deps-extra.sh python3-grpcio >/dev/null 2>&1")
  grpc_ok = nil
  if M.have_grpc() then return true end
  return nil, "the gRPC peers need Debian's python3-grpcio for " .. PYTHON .. " (apt-get install python3-grpcio)"
end

-- This Lua process: the peer exits by itself when it is gone (a crashed spec run stops nothing).
local MY_PID = (read_file("/proc/self/stat") or ""):match("^%d+")

function M.start(mode, arg)
  local out, pidfile = os.tmpname(), os.tmpname()
  local cmd = string.format("%s BAD_PEER_PARENT=%s %s %s %s %s >%s 2>&1 & echo $! >%s", CLEAN_ENV, MY_PID or "",
                            q(PYTHON), q(SCRIPT), q(mode), arg and q(arg) or "", q(out), q(pidfile))
  assert(rt.execute(cmd))
  local pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  assert(pid, "bad peer did not start")
  local p = setmetatable({ pid = pid, out = out, pidfile = pidfile, mode = mode }, Peer)
  local deadline = core.now() + 20
  while core.now() < deadline do
    local port = p:log():match("LISTENING 127%.0%.0%.1:(%d+)")
    if port then
      p.port = tonumber(port)
      p.target = "127.0.0.1:" .. port
      return p
    end
    if not p:alive() then break end
    core.sleep(0.01)
  end
  local log = p:log()
  p:stop()
  error("bad peer '" .. mode .. "' did not report LISTENING: " .. log)
end

return M
