-- Run bin/lh-put-event as a real process, with a private HOME and no LHC_* variables:
--   local cli = require "cli_run"
--   local r = cli.run({ "--list", "--wf-run-id", "w", "--port", port }, { stdin = "...", env = { K = V }, dir = "/tmp/x" })
--   r.status, r.out, r.err, r.secs
-- cli.home() is the private HOME (removed by cli.cleanup()).
local core = require "littlehorse.core"
local sh = require "sh"
local rt = require "runtime"

local M = {}
local q = sh.q

local ROOT = os.getenv("PWD") or "."
M.CLI = ROOT .. "/bin/lh-put-event"

local home
function M.home()
  if not home then
    home = os.tmpname()
    os.remove(home)
    assert(os.execute("mkdir -p " .. q(home .. "/.config")))
  end
  return home
end

function M.cleanup()
  if home then os.execute("rm -rf " .. q(home)) end
  home = nil
end

local function spit(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write_file = spit

-- opts: env = { K = V }, stdin = "data", dir = working directory, wrap = function(cmd) -> cmd
function M.run(args, opts)
  opts = opts or {}
  local parts = { "env -u LHC_API_HOST -u LHC_API_PORT -u LHC_TENANT_ID -u LHC_API_PROTOCOL HOME=" .. q(M.home()) }
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = q(M.CLI)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local cmd = table.concat(parts, " ")
  if opts.wrap then cmd = opts.wrap(cmd) end
  if opts.dir then cmd = "cd " .. q(opts.dir) .. " && " .. cmd end
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  spit(inp, opts.stdin or "")
  local t0 = core.now()
  local ok, how, code = rt.execute("(" .. cmd .. ") <" .. q(inp) .. " >" .. q(out) .. " 2>" .. q(err))
  local r = { secs = core.now() - t0, out = sh.read_file(out) or "", err = sh.read_file(err) or "" }
  r.status = how == "exit" and code or 128 + code
  os.remove(out); os.remove(err); os.remove(inp)
  assert(ok ~= nil or how, "os.execute failed")
  return r
end

return M
