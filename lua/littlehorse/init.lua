-- littlehorse: the Lua face of the client. Builds clients from options and the LHC_*
-- conventions, and re-exports the value constructors and markers. The C module
-- (littlehorse.core) does conversion and transport; this layer never builds protobuf bytes.
local core = require "littlehorse.core"
local values = require "littlehorse.values"
local retry = require "littlehorse.retry"

local M = {
  core = core,
  version = core.version,
  null = core.null,               -- JSON null (also what JSON null decodes to)
  empty_array = core.empty_array, -- encodes as []
  array_mt = core.array_mt,       -- setmetatable(t, lh.array_mt) forces a JSON array
  json_encode = core.json_encode, -- the exact JSON codec the client uses (raises on misuse)
  json_decode = core.json_decode, -- -> value | nil, err
  DEFAULT_HOST = "localhost",
  DEFAULT_PORT = 2023,
  DEFAULT_TIMEOUT = 10,
}

M.new_guid = retry.new_guid
M.retry = retry

for name, fn in pairs(values) do
  if name ~= "parse_wf_run_id" then M[name] = fn end
end

local function bad_option(name, msg)
  error(string.format("bad argument #1 to 'client' (%s: %s)", name, msg), 3)
end

local function env_port(var)
  local raw = os.getenv(var)
  if raw == nil or raw == "" then return nil end
  local n = tonumber(raw)
  if not n or n ~= math.floor(n) or n < 1 or n > 65535 then
    error(string.format("littlehorse: %s=%q is not a port number (1-65535)", var, raw), 3)
  end
  return math.tointeger(n)
end

local function env(var)
  local v = os.getenv(var)
  if v == "" then return nil end
  return v
end

--- lh.client{ host=, port=, target=, tenant=, timeout= } -> client
-- Precedence: explicit option > LHC_* environment variable > default.
function M.client(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'client' (table of options expected, got " .. type(opts) .. ")", 2)
  end
  local known = { host = true, port = true, target = true, tenant = true, timeout = true }
  for k in pairs(opts) do
    if not known[k] then bad_option(tostring(k), "unknown option") end
  end
  local host = opts.host or env("LHC_API_HOST") or M.DEFAULT_HOST
  if type(host) ~= "string" or host == "" then bad_option("host", "expected a non-empty string") end
  local port = opts.port
  if port ~= nil and (math.type(port) ~= "integer" or port < 1 or port > 65535) then
    bad_option("port", "expected an integer 1-65535")
  end
  port = port or env_port("LHC_API_PORT") or M.DEFAULT_PORT
  local target = opts.target
  if target == nil then
    -- an IPv6 literal needs brackets in a gRPC target
    target = (host:find(":", 1, true) and not host:find("^%[") and "[" .. host .. "]" or host) .. ":" .. port
  elseif type(target) ~= "string" then
    bad_option("target", "expected a string")
  end
  local tenant = opts.tenant
  if tenant == nil then tenant = env("LHC_TENANT_ID") end
  return core.client { target = target, tenant = tenant, timeout = opts.timeout or M.DEFAULT_TIMEOUT }
end

-- Client methods added in Lua (core.client_methods is the clients' __index table, per state).
local methods = core.client_methods
local raw_put = methods.put_external_event

--- client:put_external_event(req [, { timeout =, retry = true | { ... } }])
-- Without `retry` this is the plain C call; with it, see lua/littlehorse/retry.lua.
function methods.put_external_event(self, req, opts)
  if opts ~= nil and type(opts) == "table" and opts.retry then
    return retry.put(self, raw_put, req, opts)
  end
  return raw_put(self, req, opts)
end

--- client:post_event(wf_run_id, def_name, content [, opts]): retries by default.
-- opts: guid, thread_run_number, node_run_position, timeout, retry (false to disable, or options).
function methods.post_event(self, wf_run_id, def_name, content, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #4 to 'post_event' (table of options expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local req = { wf_run_id = wf_run_id, external_event_def_name = def_name, content = content,
                guid = opts.guid, thread_run_number = opts.thread_run_number,
                node_run_position = opts.node_run_position }
  local retry_opts = opts.retry
  if retry_opts == false then return raw_put(self, req, { timeout = opts.timeout }) end
  return retry.put(self, raw_put, req, { timeout = opts.timeout, retry = retry_opts or true })
end

return M
