-- Drive a server (the dev server) with the official JS SDK littlehorse-client 0.14.0, through
-- spec/conformance/client.js (see its header for the step kinds and results):
--   local lhjs = require "lhjs"
--   local r = lhjs.run(srv.target, {
--     { sdk = "putCorrelatedEvent", req = { key = "k", externalEventDefId = { name = "d" } } },
--     lhjs.raw(devhook.START, devhook.waiting_node_run { ... }, "ExternalEventIdList"),
--   })
--   r[1].code == "OK", r[1].reply.id.key == "k"; r[2].raw.results[1].guid.utf8 ...
-- One node process per run (its start costs ~0.5 s): put the steps of a test in one run.
-- JSON comes back through lua-cjson: JSON null is cjson.null; absent fields are nil.
local cjson = require "cjson"
local sh = require "sh"
local rt = require "runtime"

local M = {}
local DIR = "spec/conformance"
local set_up = false

local function self_pid()
  return (sh.read_file("/proc/self/stat") or ""):match("^(%d+)")
end

function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function M.unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- Node and the pinned npm packages (spec/conformance/setup.sh), once per process.
function M.setup()
  if set_up then return end
  rt.execute("mkdir -p build")
  local ok = rt.execute("sh " .. DIR .. "/setup.sh >build/conformance-setup.log 2>&1")
  assert(ok, "conformance setup failed (npm ci / node):\n" .. (sh.read_file("build/conformance-setup.log") or ""))
  set_up = true
end

-- A step sending `bytes` to `path` and decoding the reply as `reply_type` (rawpb.js).
function M.raw(path, bytes, reply_type)
  return { raw = path, req_hex = M.hex(bytes), reply = reply_type }
end

-- A step repeating `step` until its result has `code` (at most timeout_ms, default 10 s).
function M.until_code(code, step, timeout_ms)
  return { ["until"] = step, code = code, timeout_ms = timeout_ms or 10000 }
end

function M.run(target, steps)
  M.setup()
  local prog, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(prog, "wb"))
  f:write(cjson.encode({ steps = steps }))
  f:close()
  local cmd = string.format("node %s/client.js --target %s --parent %s <%s >%s 2>%s", DIR, sh.q(target),
                            self_pid() or "0", sh.q(prog), sh.q(out), sh.q(err))
  local ok = rt.execute(cmd)
  local text, errors = sh.read_file(out) or "", sh.read_file(err) or ""
  os.remove(prog); os.remove(out); os.remove(err)
  assert(ok, "client.js failed:\n" .. errors .. text)
  local results = cjson.decode(text)
  assert(#results == #steps, "client.js answered " .. #results .. " of " .. #steps .. " steps")
  return results
end

return M
