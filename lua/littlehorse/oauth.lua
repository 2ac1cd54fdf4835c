-- littlehorse.oauth: where the `authorization: Bearer <token>` header value comes from.
--
-- Three providers behind one interface:
--   provider:token()          -> "Bearer <token>" | nil, err   (cached while valid)
--   provider:invalidate([v])  -> drops the cached token (only if it is still v, when v is given),
--                                so the next token() fetches a new one: call it once after an
--                                UNAUTHENTICATED reply, then retry the call once
--   provider.kind             -> "oauth" | "static" | "function"
--   tostring(provider)        -> a description without any secret
--
--   oauth.client_credentials{ client_id =, client_secret =, token_url = [, ca_file =, timeout =, http_post =] }
--   oauth.shared_client_credentials{ ... }   -- the same, one provider per distinct settings
--   oauth.static("token")
--   oauth.from_function(function() return token, expires_in end)
--
-- Secrets (the client secret, tokens) live in closures, not in table fields, so printing or
-- serialising a provider cannot show them. Token fetches block the calling thread (libcurl),
-- for at most `timeout` seconds; a Lua state never runs two fetches at once, because a fetch
-- does not yield. Inside nginx they never block the worker: the request runs on a thread of
-- its own and the request's coroutine waits for it, one fetch per worker shared by every
-- request that needs a token meanwhile (see cached()).
local core = require "littlehorse.core"
local resty = require "littlehorse.resty"

local M = {}

M.DEFAULT_TIMEOUT = 10       -- seconds for one token request
M.MAX_EARLY = 30             -- refresh at most this many seconds before expiry...
M.EARLY_FRACTION = 0.1       -- ...or this fraction of the lifetime, whichever is less
M.FAILURE_HOLD = 1           -- seconds a failed fetch is remembered (invalidate() forgets it)
M.FUNCTION_WAIT = 60         -- nginx: seconds a request waits for a token function another one runs

local function now() return core.now() end

local Provider = {}
Provider.__index = Provider
Provider.__tostring = function(p) return p:describe() end
Provider.__name = "littlehorse.auth"

local function bearer(tok)
  if tok:find("^[Bb][Ee][Aa][Rr][Ee][Rr] ") then return tok end
  return "Bearer " .. tok
end

local function valid_token(tok)
  return type(tok) == "string" and tok ~= "" and not tok:find("[^\32-\126]")
end

-- The refresh point for a token that lives `expires_in` seconds from `t0`.
local function refresh_at(t0, expires_in)
  if expires_in == nil then return math.huge end
  local early = math.min(M.MAX_EARLY, expires_in * M.EARLY_FRACTION)
  return t0 + expires_in - early
end

-- Where a fetch may wait: nil (block: plain Lua, or an nginx phase where that is the only
-- way), "yield" or "defer" (an nginx phase that cannot wait), as littlehorse.resty says.
local function host_mode()
  if rawget(_G, "ngx") == nil then return nil end
  return resty._mode()
end

-- A cache of one header value, shared by the fetching providers. After a failed fetch the
-- error is returned for FAILURE_HOLD seconds without another request, so a burst of calls
-- against a broken token endpoint makes one request, not one each.
--
-- Inside nginx one Lua state serves many requests at once, and a fetch there never blocks
-- the worker: it yields (fetch does its HTTP on a thread, littlehorse.resty). So there is one
-- fetch at a time per worker: while it runs, other requests that need a token wait for its
-- result (`wait_limit` seconds at most), and a token that is due for its early refresh but
-- not yet expired is used meanwhile (the refresh runs in a timer, nobody waits for it). In a
-- phase that cannot yield (log_by_lua, ...) token() never fetches: it returns the token still
-- valid, or nil and an error, and starts the fetch in a timer.
local function cached(fetch, wait_limit)
  local value, until_t, expires_t = nil, -math.huge, -math.huge
  local failure, failure_until = nil, -math.huge
  local fetches, requests = 0, 0
  local flight       -- nginx: the fetch under way (resty._flight), others wait for its result
  local background   -- nginx: a fetch was handed to a timer

  local function fetch_now()
    local t0 = now()
    requests = requests + 1
    local v, expires_in_or_err = fetch()
    if v == nil then
      failure, failure_until = expires_in_or_err, now() + M.FAILURE_HOLD
      value = nil
      return nil, failure
    end
    fetches = fetches + 1
    failure = nil
    value, until_t = v, refresh_at(t0, expires_in_or_err)
    expires_t = expires_in_or_err == nil and math.huge or t0 + expires_in_or_err
    return value
  end

  -- nginx, a phase that can yield: this coroutine fetches, the others wait for it
  local function fetch_shared()
    if flight then return flight:wait(wait_limit) end
    local f = resty._flight()
    flight = f
    local ok, v, err = pcall(fetch_now)
    flight = nil
    if not ok then v, err = nil, "littlehorse: the token fetch raised: " .. tostring(v) end
    f:finish(v, err)
    return v, err
  end

  local function in_background()
    if flight or background then return end
    background = resty._defer("littlehorse token fetch", function()
      background = nil
      fetch_shared()
    end)
  end

  local function token()
    local t0 = now()
    if value ~= nil and t0 < until_t then return value end
    if failure ~= nil and t0 < failure_until then return nil, failure end
    local mode = host_mode()
    if mode == nil then return fetch_now() end
    if value ~= nil and t0 < expires_t then -- due for refresh, still valid: refresh aside
      in_background()
      return value
    end
    if mode == "yield" then return fetch_shared() end
    in_background()
    return nil, "littlehorse: no access token yet, and nginx's " .. tostring(resty._phase())
                .. " phase cannot wait for one (it is being fetched in a timer)"
  end
  local function invalidate(v)
    if v == nil or v == value then value, until_t, expires_t = nil, -math.huge, -math.huge end
    failure = nil
  end
  local function stats()
    local t = now()
    return { fetches = fetches, requests = requests, cached = value ~= nil and t < until_t,
             expires_in = value and until_t - t or nil }
  end
  return token, invalidate, stats
end

local function new(kind, fields, token, invalidate, stats, describe)
  local p = setmetatable(fields, Provider)
  p.kind = kind
  p.token = function(self) return token() end
  p.invalidate = function(self, v) invalidate(v); return true end
  p.stats = function(self) return stats() end
  p.describe = function(self) return describe end
  return p
end

--- A fixed token (no expiry). `tok` may include the "Bearer " prefix.
function M.static(tok)
  assert(valid_token(tok), "littlehorse: a token must be a non-empty printable ASCII string")
  local header = bearer(tok)
  local n = 0
  return new("static", {},
    function() n = n + 1; return header end,
    function() end,
    function() return { fetches = 0, calls = n, cached = true } end,
    "littlehorse.auth: static token")
end

--- A user function: fn() -> token [, expires_in seconds] | nil, err. With expires_in the token
-- is cached like an OAuth token; without it fn is called for every token().
function M.from_function(fn)
  assert(type(fn) == "function", "littlehorse: token must be a function")
  local function fetch()
    local ok, tok, expires_in = pcall(fn)
    if not ok then return nil, "littlehorse: the token function raised: " .. tostring(tok) end
    if tok == nil then return nil, "littlehorse: the token function failed: " .. tostring(expires_in or "no token") end
    if not valid_token(tok) then
      return nil, "littlehorse: the token function must return a non-empty printable ASCII string, got "
                  .. (type(tok) == "string" and "an invalid string" or type(tok))
    end
    if expires_in ~= nil and (type(expires_in) ~= "number" or expires_in ~= expires_in) then
      return nil, "littlehorse: the token function's second result (expires_in) must be a number of seconds"
    end
    if expires_in == nil then expires_in = 0 end -- not cached
    return bearer(tok), expires_in
  end
  local token, invalidate, stats = cached(fetch, M.FUNCTION_WAIT)
  return new("function", {}, token, invalidate, stats, "littlehorse.auth: token function")
end

---------------------------------------------------------------------------------------------
-- OAuth2 client credentials (RFC 6749 §4.4) with HTTP Basic client authentication (§2.3.1:
-- id and secret are form-urlencoded before base64, as Nimbus in the Java SDK does).

local function form_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The URL for messages: no user info, no query.
local function display_url(url)
  return (url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1"):gsub("[?#].*$", ""))
end

local function printable(s, max)
  s = s:gsub("[^\32-\126]", "?")
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

function M.client_credentials(o)
  assert(type(o) == "table", "littlehorse: client_credentials expects a table")
  local client_id, client_secret, token_url = o.client_id, o.client_secret, o.token_url
  assert(type(client_id) == "string" and client_id ~= "", "littlehorse: oauth client_id must be a non-empty string")
  assert(type(client_secret) == "string" and client_secret ~= "", "littlehorse: oauth client_secret must be a non-empty string")
  assert(type(token_url) == "string" and token_url:find("^[hH][tT][tT][pP][sS]?://"),
         "littlehorse: oauth token_url must be an http:// or https:// URL")
  local timeout = o.timeout or M.DEFAULT_TIMEOUT
  local ca_file = o.ca_file
  local http_post = o.http_post
  local shown_url = display_url(token_url)
  local user, password = form_encode(client_id), form_encode(client_secret)

  -- No message may carry the secret, even if a server echoes it back.
  local function scrub(msg)
    msg = tostring(msg)
    local plain = 1
    for _, s in ipairs({ client_secret, password }) do
      local i = msg:find(s, plain, true)
      while i do
        msg = msg:sub(1, i - 1) .. "<hidden>" .. msg:sub(i + #s)
        i = msg:find(s, i + 8, true)
      end
    end
    return msg
  end
  local function fail(msg)
    return nil, scrub("littlehorse: OAuth token request to " .. shown_url .. " failed: " .. msg)
  end

  local function fetch()
    -- inside an nginx phase that can yield, on a thread, awaited without blocking the worker
    local post = http_post or (resty._can_yield() and resty._http_post) or core._http_post
    if not post then return fail("this build of littlehorse.core has no HTTP client (libcurl)") end
    local ok, status, body = pcall(post, token_url, "grant_type=client_credentials",
                                   { user = user, password = password, timeout = timeout, ca_file = ca_file })
    if not ok then return fail(tostring(status)) end
    if status == nil then return fail(tostring(body)) end
    local reply = core.json_decode(body)
    if status ~= 200 then
      local why = ""
      if type(reply) == "table" and type(reply.error) == "string" then
        why = ": " .. printable(reply.error, 100)
        if type(reply.error_description) == "string" then why = why .. " (" .. printable(reply.error_description, 200) .. ")" end
      elseif body ~= "" then
        why = ": " .. printable(body, 200)
      end
      return fail("HTTP " .. tostring(status) .. why)
    end
    if type(reply) ~= "table" then return fail("the reply is not a JSON object") end
    local tok = reply.access_token
    if not valid_token(tok) then return fail("the reply has no usable access_token") end
    local tt = reply.token_type
    if tt ~= nil and (type(tt) ~= "string" or tt:lower() ~= "bearer") then
      return fail("token_type is " .. (type(tt) == "string" and string.format("%q", printable(tt, 40)) or type(tt))
                  .. ", expected Bearer")
    end
    local expires_in = reply.expires_in
    if type(expires_in) == "string" then expires_in = tonumber(expires_in) or false end
    if expires_in ~= nil and (type(expires_in) ~= "number" or expires_in ~= expires_in or expires_in < 0) then
      return fail("expires_in is not a number of seconds")
    end
    return "Bearer " .. tok, expires_in
  end

  local token, invalidate, stats = cached(fetch, timeout + 1)
  return new("oauth", { client_id = client_id, token_url = shown_url }, token, invalidate, stats,
             "littlehorse.auth: oauth client_credentials (client_id " .. client_id .. ", " .. shown_url .. ")")
end

-- Providers by credentials, so that every client made with the same OAuth settings in this Lua
-- state shares one cached token (a thousand lh.client() calls make one token request). Weak:
-- a provider goes when no client holds it.
local shared = setmetatable({}, { __mode = "v" })

--- Like client_credentials, but returns the existing provider for the same settings.
function M.shared_client_credentials(o)
  if o.http_post ~= nil then return M.client_credentials(o) end
  local key = table.concat({ tostring(o.token_url), tostring(o.client_id), tostring(o.client_secret),
                             tostring(o.ca_file), tostring(o.timeout) }, "\0")
  local p = shared[key]
  if not p then
    p = M.client_credentials(o)
    shared[key] = p
  end
  return p
end

M.form_encode = form_encode
M.display_url = display_url

return M
