-- The conformance peer (spec/conformance/server.js: the official littlehorse-client 0.14.0
-- codec) as a process for specs, and its side doors for the event API's newer RPCs:
--   local peer = require("conformance_peer").start()   -- peer.port; peer:stop()
--   peer:queue_reply(client, { method = "ListExternalEvents", type = "ExternalEventList", msg = {...}, parts = {...} })
--   peer:last_request(client, "PutCorrelatedEvent")   -- { method, raw_hex, official, raw, metadata }
-- (see the header of server.js for the description formats). JSON goes through lua-cjson, not
-- through the client's own codec.
local cjson = require "cjson"
local lh = require "littlehorse"
local core = require "littlehorse.core"
local sh = require "sh"

local M = {}
local DIR = "spec/conformance"

local Peer = {}
Peer.__index = Peer

local function self_pid()
  return (sh.read_file("/proc/self/stat") or ""):match("^(%d+)")
end

function M.start()
  os.execute("mkdir -p build")
  local ok = os.execute("sh " .. DIR .. "/setup.sh >build/conformance-setup.log 2>&1")
  assert(ok, "conformance peer setup failed (npm ci / node):\n" .. (sh.read_file("build/conformance-setup.log") or ""))
  local out, pidfile = os.tmpname(), os.tmpname()
  assert(os.execute(string.format("node %s/server.js --port 0 --parent %s >%s 2>&1 & echo $! >%s", DIR,
                                  self_pid() or "0", out, pidfile)))
  local pid = tonumber((sh.read_file(pidfile) or ""):match("%d+"))
  os.remove(pidfile)
  assert(pid, "conformance peer did not start")
  local peer = setmetatable({ pid = pid, out = out }, Peer)
  local deadline = core.now() + 30 -- node needs a moment to load
  while core.now() < deadline do
    local port = (sh.read_file(out) or ""):match("LISTENING 127%.0%.0%.1:(%d+)")
    if port then
      peer.port = tonumber(port)
      return peer
    end
    core.sleep(0.01)
  end
  local log = sh.read_file(out) or ""
  peer:stop()
  error("conformance peer did not report LISTENING:\n" .. log)
end

function Peer:stop()
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local deadline = core.now() + 3
  while core.now() < deadline do
    local stat = sh.read_file("/proc/" .. self.pid .. "/stat")
    if not stat or stat:match("^%d+ %b() (%a)") == "Z" then break end
    core.sleep(0.01)
  end
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  os.remove(self.out)
end

-- The next call of desc.method is answered with the reply desc describes.
function Peer:queue_reply(client, desc)
  local ev, err = client:put_external_event { wf_run_id = "queue-reply", external_event_def_name = "x",
                                              content = lh.str(cjson.encode(desc)) }
  assert(ev, tostring(err))
end

-- The record of the last request of `method` the peer received.
function Peer:last_request(client, method)
  local def, err = client:get_external_event_def("last:" .. method)
  assert(def, tostring(err))
  return cjson.decode(def.id.name)
end

return M
