-- littlehorse: the Lua face of the client (docs/api.md). lh.client makes clients
-- (littlehorse.client) from options and the LHC_* conventions (littlehorse.config); the rest
-- are the value constructors, markers and helpers. The C module (littlehorse.core) does
-- conversion and transport; this layer never builds protobuf bytes.
local core = require "littlehorse.core"
local values = require "littlehorse.values"
local retry = require "littlehorse.retry"
local config = require "littlehorse.config"
local client = require "littlehorse.client"
local outbox = require "littlehorse.outbox"

local M = {
  client = client.new,
  outbox = outbox.new,
  core = core,
  version = core.version,
  null = core.null,               -- JSON null (also what JSON null decodes to)
  empty_array = core.empty_array, -- encodes as []
  array_mt = core.array_mt,       -- setmetatable(t, lh.array_mt) forces a JSON array
  json_encode = core.json_encode, -- the exact JSON codec the client uses (raises on misuse)
  json_decode = core.json_decode, -- -> value | nil, err
  new_guid = retry.new_guid,
  -- the retry policy's constants and checks (the retry loop itself is the client's)
  retry = { DEFAULTS = retry.DEFAULTS, RETRYABLE = retry.RETRYABLE, NEVER = retry.NEVER,
            policy = retry.policy, default_sleep = retry.default_sleep },
  DEFAULT_HOST = config.DEFAULTS.host,
  DEFAULT_PORT = config.DEFAULTS.port,
  DEFAULT_TIMEOUT = config.DEFAULTS.timeout,
}

for _, name in ipairs { "bytes", "str", "int", "double", "json_obj", "json_arr", "wf_run_id", "timestamp",
                        "array", "map", "struct" } do
  M[name] = values[name]
end

return M
