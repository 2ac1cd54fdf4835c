-- grpc-probe (spec/support/grpc_probe.c): a small gRPC C-core client for dev-server specs that
-- need a client independent of the Lua one (TLS, mTLS, any authorization header) or many
-- calls in flight at once on one channel.
--   local probe = require "probe"
--   local r = probe.run { target = "127.0.0.1:" .. port, method = "get-def", def = "x",
--                         ca =, cert =, key =, server_name =, metadata = { authorization = "Bearer t" },
--                         count = 50, timeout = 5, wf =, guid = }
--   r.calls[i] = { code = "OK", status = 0, ms = 12.3, message = "" }  (i from 1, request order)
-- Any method with request bytes of your own: path = "/littlehorse.devserver.DevServer/StartWaiting",
-- body = "<protobuf bytes>" (instead of method); each OK call then also has reply = "<bytes>".
--   r.ok, r.count, r.wall_ms
local sh = require "sh"
local rt = require "runtime"
local M = {}

local SRC = "spec/support/grpc_probe.c"
local BIN = os.getenv("LH_GRPC_PROBE") or "./build/grpc-probe"

local q = sh.q

local function mtime(path)
  local p = io.popen("stat -c %Y " .. q(path) .. " 2>/dev/null")
  local t = tonumber(p:read("*a"))
  p:close()
  return t
end

-- Builds build/grpc-probe when it is missing or older than its source.
function M.build()
  local b, s = mtime(BIN), mtime(SRC)
  if b and s and b >= s then return BIN end
  rt.execute("mkdir -p build")
  local log = os.tmpname()
  local ok = rt.execute(string.format("cc -O1 -g -Wall -o %s %s -lgrpc -lgpr >%s 2>&1", q(BIN), q(SRC), q(log)))
  local f = io.open(log)
  local msg = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(log)
  if ok ~= true and ok ~= 0 then error("cannot build grpc-probe: " .. msg) end
  return BIN
end

function M.run(o)
  local args = { M.build(), "--target", q(o.target) }
  local function add(flag, v) if v ~= nil then args[#args + 1] = flag; args[#args + 1] = q(v) end end
  add("--ca", o.ca); add("--cert", o.cert); add("--key", o.key); add("--server-name", o.server_name)
  add("--method", o.method); add("--def", o.def); add("--wf", o.wf); add("--guid", o.guid)
  add("--count", o.count); add("--timeout", o.timeout); add("--path", o.path)
  if o.body then add("--body-hex", (o.body:gsub(".", function(c) return string.format("%02x", c:byte()) end))) end
  for k, v in pairs(o.metadata or {}) do add("--md", k .. "=" .. v) end
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  local r = { calls = {}, output = out }
  for i, name, status, ms, msg in out:gmatch("CALL (%d+) (%S+) (%d+) ([%d.]+) ?([^\n]*)") do
    r.calls[tonumber(i) + 1] = { code = name, status = tonumber(status), ms = tonumber(ms), message = msg }
  end
  for i, h in out:gmatch("REPLY (%d+) (%x*)") do
    r.calls[tonumber(i) + 1].reply = h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
  end
  local n, ok, wall = out:match("DONE (%d+) ok=(%d+) wall_ms=([%d.]+)")
  if not n then error("grpc-probe failed: " .. out) end
  r.count, r.ok, r.wall_ms = tonumber(n), tonumber(ok), tonumber(wall)
  return r
end

return M
