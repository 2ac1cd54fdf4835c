-- littlehorse.validate: the client's `validate` option (docs/api.md, "Validating content").
-- Not a module of its own API.
--
-- Before a put is sent, its content is checked against the type of its ExternalEventDef, as
-- the server would check it (core.check_content), so content of the wrong type fails at once,
-- naming where it is wrong, instead of after a round trip. The def is fetched once and kept
-- for `ttl` seconds per client. Anything that keeps the check from being made (the def cannot
-- be read, the content is not convertible) lets the put go as it is: the server checks it
-- anyway, and the put reports its own errors. Runs on Lua 5.1, LuaJIT and 5.2-5.4.
local core = require "littlehorse.core"
local misuse = require "littlehorse.misuse"

local M = {}

M.DEFAULT_TTL = 60

local OPTIONS = misuse.names { "ttl" }

--- The client option: validate = true | false | { ttl = seconds }. Returns the client's cache
-- ({ ttl =, defs = {} }) or false.
function M.option(v)
  if v == nil or v == false then return false end
  local ttl = M.DEFAULT_TTL
  if type(v) == "table" then
    misuse.check_keys(v, OPTIONS, "client", 1, "validate option")
    if v.ttl ~= nil then
      if type(v.ttl) ~= "number" or not (v.ttl >= 0) or v.ttl == math.huge then
        misuse.bad("client", 1, "validate.ttl: expected a number of seconds >= 0")
      end
      ttl = v.ttl
    end
  elseif v ~= true then
    misuse.bad("client", 1, "validate: expected true, false or { ttl = seconds }, got " .. type(v))
  end
  return { ttl = ttl, defs = {} }
end

-- The def, from the cache or fetched with get(name); nil when it cannot be read.
local function def_of(cache, get, name)
  local hit = cache.defs[name]
  local now = core.now()
  if hit and now - hit.at < cache.ttl then return hit.def end
  local def = get(name)
  if not def then
    cache.defs[name] = nil
    return nil
  end
  cache.defs[name] = { def = def, at = now }
  return def
end

local function refusal(rpc, message, path)
  local _, err = core.new_error("INVALID_ARGUMENT", message, rpc)
  err.sent = false
  err.path = path
  return err
end

--- Check a put's content. rpc: "PutExternalEvent" or "PutCorrelatedEvent"; get(name) ->
-- def | nil. Returns nil (send it) or an error object (INVALID_ARGUMENT, sent = false, path).
function M.check(cache, rpc, get, name, content)
  if type(name) ~= "string" then return nil end -- the call itself reports it
  local def = def_of(cache, get, name)
  if not def then return nil end
  if rpc == "PutCorrelatedEvent" and not def.correlated_event_config then
    return refusal(rpc, "ExternalEventDef " .. name .. " does not have CorrelatedEvents enabled (no " ..
                   "correlated_event_config; checked by the client)")
  end
  local ti = def.type_information
  if ti == nil then return nil end -- an untyped def takes any content
  local ok, fits, detail, path = pcall(core.check_content, ti, content, rpc)
  if not ok or fits then return nil end
  return refusal(rpc, string.format("%s: %s (content checked by the client against ExternalEventDef %s)", path,
                                    detail, name), path)
end

--- Forget a def (after it was put or deleted through this client).
function M.forget(cache, name)
  if cache and type(name) == "string" then cache.defs[name] = nil end
end

return M
