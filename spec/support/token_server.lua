-- spec/support/token_server.py as a process for specs.
--   local token_server = require "token_server"
--   local ts = token_server.start { client_id = "c", client_secret = "s", expires_in = 2,
--                                   token_file = path }   -- also no_expires_in = true,
--                                                            -- delay_ms = N (a slow endpoint)
--   ts.url ("http://127.0.0.1:PORT"), ts.token_url, ts:fetch() -> reply table | nil, status,
--   ts:stats() -> { requests =, issued =, failed =, revoked = }, ts:revoke(), ts:stop()
-- HTTP from Lua goes through python3 (also what runs the server), so no Lua socket library
-- is needed.
local core = require "littlehorse.core"
local sh = require "sh"
local rt = require "runtime"

local M = {}
local SCRIPT = "spec/support/token_server.py"

local q = sh.q

local read_file = sh.read_file

local TS = {}
TS.__index = TS

-- One HTTP request through python3: returns status, body.
local HTTP = [[
import base64, sys, urllib.request, urllib.error
method, url, user, pw, body = sys.argv[1:6]
req = urllib.request.Request(url, data=body.encode() if method == "POST" else None, method=method)
if user:
    req.add_header("Authorization", "Basic " + base64.b64encode((user + ":" + pw).encode()).decode())
req.add_header("Content-Type", "application/x-www-form-urlencoded")
try:
    r = urllib.request.urlopen(req, timeout=5)
    code, data = r.status, r.read()
except urllib.error.HTTPError as e:
    code, data = e.code, e.read()
sys.stdout.write("%d\n%s" % (code, data.decode()))
]]

local function http(method, url, user, pw, body)
  local cmd = string.format("python3 -c %s %s %s %s %s %s", q(HTTP), q(method), q(url), q(user or ""), q(pw or ""),
                            q(body or ""))
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  local status, rest = out:match("^(%d+)\n(.*)$")
  if not status then error("HTTP request failed: " .. out) end
  return tonumber(status), rest
end

local function form_escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- POST /token with the configured (or given) client credentials.
function TS:fetch(id, secret)
  -- RFC 6749 2.3.1: form-urlencode id and secret before Basic encoding
  local status, body = http("POST", self.token_url, form_escape(id or self.client_id),
                            form_escape(secret or self.client_secret), "grant_type=client_credentials")
  if status ~= 200 then return nil, status, body end
  return core.json_decode(body), status
end

function TS:stats()
  local status, body = http("GET", self.url .. "/stats")
  assert(status == 200, body)
  return core.json_decode(body)
end

function TS:revoke()
  local status, body = http("POST", self.url .. "/revoke", nil, nil, "")
  assert(status == 200, body)
  return core.json_decode(body)
end

function TS:stop()
  if self.stopped then return end
  self.stopped = true
  rt.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local deadline = core.now() + 5
  while core.now() < deadline do
    local stat = read_file("/proc/" .. self.pid .. "/stat")
    if not stat or stat:match("^%d+ %b() (%a)") == "Z" then break end
    core.sleep(0.01)
  end
  os.remove(self.out)
  os.remove(self.pidfile)
end

function M.start(o)
  o = o or {}
  local out, pidfile = os.tmpname(), os.tmpname()
  local ts = setmetatable({ client_id = o.client_id or "lh-client", client_secret = o.client_secret or "lh-secret",
                            out = out, pidfile = pidfile, token_file = o.token_file }, TS)
  local args = { "python3", SCRIPT, "--port", "0", "--client-id", q(ts.client_id), "--client-secret",
                 q(ts.client_secret) }
  if o.expires_in then args[#args + 1] = "--expires-in " .. tonumber(o.expires_in) end
  if o.no_expires_in then args[#args + 1] = "--no-expires-in" end
  if o.delay_ms then args[#args + 1] = "--delay-ms " .. math.floor(o.delay_ms) end
  if o.token_file then args[#args + 1] = "--token-file " .. q(o.token_file) end
  assert(rt.execute(string.format("%s >%s 2>&1 & echo $! >%s", table.concat(args, " "), q(out), q(pidfile))))
  ts.pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  for _ = 1, 1000 do
    local port = (read_file(out) or ""):match("LISTENING 127%.0%.0%.1:(%d+)")
    if port then
      ts.port = tonumber(port)
      ts.url = "http://127.0.0.1:" .. port
      ts.token_url = ts.url .. "/token"
      return ts
    end
    core.sleep(0.01)
  end
  local log = read_file(out) or ""
  ts:stop()
  error("token server did not start: " .. log)
end

return M
