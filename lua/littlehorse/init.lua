-- littlehorse: the Lua face of the client. Builds clients from options and the LHC_*
-- conventions, and re-exports the value constructors and markers. The C module
-- (littlehorse.core) does conversion and transport; this layer never builds protobuf bytes.
local core = require "littlehorse.core"
local values = require "littlehorse.values"
local retry = require "littlehorse.retry"
local resty = require "littlehorse.resty"
local config = require "littlehorse.config"

local M = {
  core = core,
  version = core.version,
  null = core.null,               -- JSON null (also what JSON null decodes to)
  empty_array = core.empty_array, -- encodes as []
  array_mt = core.array_mt,       -- setmetatable(t, lh.array_mt) forces a JSON array
  json_encode = core.json_encode, -- the exact JSON codec the client uses (raises on misuse)
  json_decode = core.json_decode, -- -> value | nil, err
  DEFAULT_HOST = config.DEFAULTS.host,
  DEFAULT_PORT = config.DEFAULTS.port,
  DEFAULT_TIMEOUT = config.DEFAULTS.timeout,
}

M.new_guid = retry.new_guid
M.retry = retry

for name, fn in pairs(values) do
  if name ~= "parse_wf_run_id" then M[name] = fn end
end

--- lh.client(opts) -> client. Settings come from opts, then the LHC_* environment variables,
-- then the properties file (~/.config/littlehorse.config or opts.config_file), then defaults:
-- see lua/littlehorse/config.lua and docs/config.md. Warnings (a clamped keepalive, ignored
-- certificate settings) go to ngx.log(ngx.WARN) under OpenResty, else to Lua's warn().
-- The auth provider of each client (token or OAuth; docs/config.md), by client.
local auth_of = setmetatable({}, { __mode = "k" })

function M.client(opts)
  if resty.in_master() then
    error("littlehorse: no clients in init_by_lua (the nginx master): gRPC must not start before " ..
          "nginx forks its workers. Make clients in init_worker_by_lua, or lazily in a handler.", 2)
  end
  local cfg = config.load(opts, 2)
  for _, w in ipairs(cfg.warnings) do
    local ngx = rawget(_G, "ngx")
    if type(ngx) == "table" and ngx.log and ngx.WARN then ngx.log(ngx.WARN, w)
    elseif warn then warn(w) end
  end
  -- core.client takes the transport settings (target, tenant, timeout, tls, keepalive_*,
  -- lb_policy, max_receive_size); the auth provider stays here and adds a header per call.
  local client = core.client(cfg)
  auth_of[client] = cfg.auth
  return resty.track(client)
end

-- Client methods added in Lua (core.client_methods is the clients' __index table, per state).
local methods = core.client_methods

-- opts with the client's `authorization` header added (a fresh token when needed), for a
-- client that has an auth provider: returns true, opts, header | false, err, code when no
-- token can be had (the error names `method`, the RPC, like every other).
local function authorize(self, opts, method)
  local header, why = auth_of[self]:token()
  if not header then
    local _, err, code = core.new_error("UNAUTHENTICATED", "no access token: " .. tostring(why), method)
    return false, err, code
  end
  local o, md = {}, {}
  if type(opts) == "table" then
    for k, v in pairs(opts) do o[k] = v end
    if type(opts.metadata) == "table" then for k, v in pairs(opts.metadata) do md[k] = v end end
  end
  md.authorization = header
  o.metadata = md
  return true, o, header
end

-- One call: the blocking C call, except inside an nginx phase that can yield, where the call
-- runs async and the request waits on a cosocket (littlehorse.resty), so the worker never
-- blocks. With a token: sent as `authorization`; on UNAUTHENTICATED the token is refreshed
-- once and the call made again.
local function once(self, sync, async, req, opts)
  if resty.can_yield() then return resty.call(self, async, req, opts) end
  return sync(self, req, opts)
end

local function call(self, method, sync, async, req, opts)
  if not auth_of[self] then return once(self, sync, async, req, opts) end -- no token: as is
  local ok, o, header = authorize(self, opts, method)
  if not ok then return nil, o, header end
  local ev, err, status = once(self, sync, async, req, o)
  if status == "UNAUTHENTICATED" then
    auth_of[self]:invalidate(header)
    ok, o, header = authorize(self, opts, method)
    if not ok then return nil, o, header end
    return once(self, sync, async, req, o)
  end
  return ev, err, status
end

-- An async method: the C one, with the client's `authorization` header when it has a token.
local function async_method(method, c_method)
  return function(self, req, opts)
    if not auth_of[self] then return c_method(self, req, opts) end
    local ok, o, code = authorize(self, opts, method)
    if not ok then return nil, o, code end
    return c_method(self, req, o)
  end
end

-- Every RPC, blocking and async, goes through the wrappers above (token, nginx routing).
for name, method in pairs { put_external_event = "PutExternalEvent", get_external_event = "GetExternalEvent",
                            put_external_event_def = "PutExternalEventDef",
                            get_external_event_def = "GetExternalEventDef" } do
  local sync, async = methods[name], methods[name .. "_async"]
  methods[name] = function(self, req, opts) return call(self, method, sync, async, req, opts) end
  methods[name .. "_async"] = async_method(method, async)
end
local raw_put = methods.put_external_event -- the retry helpers wrap it below

--- client:put_external_event(req [, { timeout =, retry = true | { ... } }])
-- Without `retry` this is the plain call; with it, see lua/littlehorse/retry.lua.
function methods.put_external_event(self, req, opts)
  if type(opts) == "table" and rawget(opts, "retry") then -- options are read raw, as in C
    return retry.put(self, raw_put, req, opts)
  end
  return raw_put(self, req, opts)
end

--- client:post_event(wf_run_id, def_name, content [, opts]): retries by default.
-- opts: guid, thread_run_number, node_run_position, timeout, reply (false: returns true, the
-- stored event is not decoded), retry (false to disable, or options).
function methods.post_event(self, wf_run_id, def_name, content, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #4 to 'post_event' (table of options expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local req = { wf_run_id = wf_run_id, external_event_def_name = def_name, content = content,
                guid = opts.guid, thread_run_number = opts.thread_run_number,
                node_run_position = opts.node_run_position }
  local retry_opts = opts.retry
  if retry_opts == false then return raw_put(self, req, { timeout = opts.timeout, reply = opts.reply }) end
  return retry.put(self, raw_put, req, { timeout = opts.timeout, reply = opts.reply, retry = retry_opts or true })
end

return M
