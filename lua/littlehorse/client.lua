-- littlehorse.client: the client lh.client() returns (docs/api.md). Not a module of its own
-- API: use it through require("littlehorse").client.
--
-- A Lua object around a littlehorse.core client, the C object that converts requests and
-- replies, makes the calls and runs the async engine. The C object is used as it is:
-- requiring littlehorse changes nothing about core clients. Every RPC method reads top to
-- bottom:
--   1. options: misuse raises (the C side checks the call options and the request, read raw;
--      this layer reads `retry`, `validate` and `on_done` raw too, so it sees what the C side
--      sees); for puts with `validate`, the content checked against its def's type
--      (littlehorse.validate);
--   2. retry, for posts that ask for it (littlehorse.retry), around each attempt, which is
--   3. auth: the client's token as the `authorization` header, refreshed once when the
--      server answers UNAUTHENTICATED;
--   4. the call: inside an nginx phase that can yield, async with the request's coroutine
--      waiting for its wake-up (littlehorse.resty); elsewhere the blocking C call.
-- Async forms share step 3: a call of a client with a token returns a handle that sends the
-- call once more with a fresh token if the first answer is UNAUTHENTICATED (AuthCall below).
-- In an nginx phase that cannot yield (log_by_lua, ...), writes are started at once and
-- finished in a timer, and reads raise ("Phases that cannot wait" below).
--
-- Adding an RPC: its row in src/client.c's rpcs table (conversion) and one entry in RPCS.
local core = require "littlehorse.core"
local config = require "littlehorse.config"
local resty = require "littlehorse.resty"
local retry = require "littlehorse.retry"
local misuse = require "littlehorse.misuse"
local pages = require "littlehorse.pages"
local validate = require "littlehorse.validate"
local values = require "littlehorse.values"

local type, pairs, rawget, pcall, tostring = type, pairs, rawget, pcall, tostring
local resty_mode = resty._mode

-- The RPCs. name: the method (and name_async); rpc: the RPC, as errors name it; post: the
-- blocking form takes the `retry` option (exactly-once posting, littlehorse.retry: "event"
-- keyed by guid, "correlated" by correlation key) and `validate`; def_change: it changes a
-- def (the validate cache forgets it); write: in an nginx phase that cannot yield, the
-- blocking form is started there and finished in a timer (a row without it raises there: its
-- caller wants the reply, which cannot come).
local RPCS = {
  { name = "put_external_event", rpc = "PutExternalEvent", post = "event", write = true },
  { name = "get_external_event", rpc = "GetExternalEvent" },
  { name = "put_external_event_def", rpc = "PutExternalEventDef", def_change = true, write = true },
  { name = "get_external_event_def", rpc = "GetExternalEventDef" },
  { name = "delete_external_event_def", rpc = "DeleteExternalEventDef", def_change = true, write = true },
  { name = "put_correlated_event", rpc = "PutCorrelatedEvent", post = "correlated", write = true },
  { name = "get_correlated_event", rpc = "GetCorrelatedEvent" },
  { name = "delete_correlated_event", rpc = "DeleteCorrelatedEvent", write = true },
  { name = "list_external_events", rpc = "ListExternalEvents" },
  { name = "search_external_events", rpc = "SearchExternalEvent" },
  { name = "search_correlated_events", rpc = "SearchCorrelatedEvent" },
  { name = "search_external_event_defs", rpc = "SearchExternalEventDef" },
  -- a PutExternalEventRequest or PutCorrelatedEventRequest packed beforehand (an outbox
  -- record), sent as it is
  { name = "put_external_event_packed", rpc = "PutExternalEvent" },
  { name = "put_correlated_event_packed", rpc = "PutCorrelatedEvent" },
}
local RPC = {}
for _, r in ipairs(RPCS) do
  r.async = r.name .. "_async"
  RPC[r.name] = r
end

-- The C client's methods (the __index of its metatable), bound to each RPC row as r.sync and
-- r.start when the first client of this Lua state is made (no gRPC work before that).
local C

local function bind_c_methods(c)
  C = getmetatable(c).__index
  for _, r in ipairs(RPCS) do r.sync, r.start = C[r.name], C[r.async] end
end

local Client = {}
local Client_mt = { __index = Client, __name = "littlehorse.client" }

-- Each client's C client. Looking self up here, rather than reading self._core, finds a wrong
-- self (a number, nil, a request passed with '.' instead of ':') without raising, and without
-- a call to type() on every call (a C function call: bench/instructions.sh counts it).
local CORE = setmetatable({}, { __mode = "k" })

local function bad_self(self, method)
  misuse.bad(method, 1, string.format("littlehorse.client expected, got %s; call it as client:%s(...)",
                                      type(self), method))
end

---------------------------------------------------------------------------------------------
-- 3. Auth

-- opts with the client's `authorization` header added (a fresh token when needed): returns
-- opts, header | nil, err, code when no token can be had. Options that are not a table, or
-- metadata that is not one, go to the C side unchanged, which raises.
local function authorize(auth, r, opts)
  local header, why = auth:token()
  if not header then
    local _, err, code = core.new_error("UNAUTHENTICATED", "no access token: " .. tostring(why), r.rpc)
    err.sent = false
    return nil, err, code
  end
  if opts ~= nil and type(opts) ~= "table" then return opts, header end
  local o = {}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  local md = o.metadata
  if md == nil or type(md) == "table" then
    local with_token = {}
    if md then for k, v in pairs(md) do with_token[k] = v end end
    with_token.authorization = header
    o.metadata = with_token
  end
  return o, header
end

-- Where a call is made: nil (block: plain Lua, or an nginx phase where that is the only way),
-- "yield" (an nginx phase that can yield) or "defer" (one that cannot). Outside nginx this is
-- one rawget.
local function host_mode()
  if rawget(_G, "ngx") == nil then return nil end
  return resty_mode()
end

local function phase_name() return resty._phase() or "?" end

local function cannot_wait(name)
  misuse.raise(string.format("littlehorse: %s cannot wait for its reply in nginx's %s phase (that would block "
    .. "the worker); call it from a phase that can yield (rewrite, access, content) or in a timer "
    .. "(ngx.timer.at(0, fn))", name, phase_name()))
end

-- 4. One call, blocking the caller (or, in nginx, only the request's coroutine). Where
-- nothing may wait (the writes were handed to a timer before this), it raises.
local function send(c, r, req, opts)
  local mode = host_mode()
  if mode == "yield" then return resty._call(c, r.start, req, opts) end
  if mode == "defer" then cannot_wait(r.name) end
  return r.sync(c, req, opts)
end

-- 3 + 4: one attempt, with the client's token when it has one.
local function attempt(self, c, r, req, opts)
  local auth = self._auth
  if not auth then return send(c, r, req, opts) end
  local o, header, code = authorize(auth, r, opts)
  if not o then return nil, header, code end
  local v, err
  v, err, code = send(c, r, req, o)
  if code ~= "UNAUTHENTICATED" then return v, err, code end
  auth:invalidate(header) -- expired or revoked early: one more try with a fresh token
  o, header, code = authorize(auth, r, opts)
  if not o then return nil, header, code end
  return send(c, r, req, o)
end

---------------------------------------------------------------------------------------------
-- Phases that cannot wait (nginx's log, set, header and body filters, init_worker, ...)
--
-- Waiting there would block the worker (a yield is not allowed). A write is started at once
-- (misuse raises at the caller's line; the request is converted and sent now) and its wait,
-- the UNAUTHENTICATED refresh and any retries go on in a zero-delay ngx.timer; the method
-- returns true, { deferred = true, guid = <the guid sent, or nil> } at once, and a failure is
-- logged at [error] from the timer. When the client's token is not at hand (never fetched
-- yet), the whole call goes to the timer. A read raises: its reply could not be returned.

local function log_failure(what, phase, err, guid)
  local ngx = ngx
  ngx.log(ngx.ERR, "littlehorse: ", what, " called in the ", phase, " phase failed",
          guid and (" (guid " .. tostring(guid) .. ")") or "", ": ", tostring(err))
end

-- The sync form's own checks of what the async form would take without a word.
local function sync_only_options(r, opts)
  if type(opts) ~= "table" then return end
  if rawget(opts, "on_done") ~= nil then misuse.bad(r.name, 2, "on_done: only async calls take on_done") end
  if rawget(opts, "retry") ~= nil and not r.post then
    misuse.bad(r.name, 2, "retry: this call does not retry: the littlehorse client's blocking puts and posts "
                          .. "(put_external_event, post_event, put_correlated_event, post_correlated_event) do")
  end
end

-- Start r's call now (async, with the client's token when it has one at hand). Returns
-- handle, header | false (no token at hand: the whole call must go to the timer) | nil, err,
-- code (refused before sending). Misuse raises, naming the blocking method.
local function start_now(self, c, r, req, opts)
  local o, header = opts, nil
  if self._auth then
    o, header = authorize(self._auth, r, opts)
    if not o then return false end
  end
  local ok, h, err, code = pcall(r.start, c, req, o)
  if not ok then
    if type(h) == "string" then h = h:gsub("to '" .. r.async .. "'", "to '" .. r.name .. "'", 1) end
    error(h, 0)
  end
  if not h then return nil, err, code end
  return h, header
end

-- In the timer: the started call's outcome (one more try with a fresh token on
-- UNAUTHENTICATED, as attempt() does).
local function finish(self, c, r, req, opts, h, header)
  local v, err, code = resty._await(h, ((type(opts) == "table" and rawget(opts, "timeout")) or C.timeout(c)) + 1)
  local auth = self._auth
  if code ~= "UNAUTHENTICATED" or not auth then return v, err, code end
  auth:invalidate(header)
  local o
  o, header, code = authorize(auth, r, opts)
  if not o then return nil, header, code end
  return send(c, r, req, o)
end

-- The timer for a deferred call, made before the call starts (so that a refusal to make it
-- leaves nothing sent): run(job) in it once job is filled in.
local function defer_timer(what, job, run)
  local ok, err = resty._defer(what, function()
    if job.ready then run(job) end
  end)
  if ok then return true end
  local _, e, code = core.new_error("RESOURCE_EXHAUSTED", "cannot hand the call to an nginx timer from the "
                                    .. phase_name() .. " phase: " .. tostring(err), job.rpc)
  e.sent = false
  return nil, e, code
end

-- A write without retries, from a phase that cannot wait.
local function deferred(self, c, r, req, opts)
  sync_only_options(r, opts)
  local phase = phase_name()
  local job = { rpc = r.rpc }
  local ok, e, code = defer_timer(r.name, job, function(j)
    local v, err
    if j.whole then v, err = self[r.name](self, req, opts)
    else v, err = finish(self, c, r, req, opts, j.h, j.header) end
    if not v then log_failure(r.name, phase, err, type(req) == "table" and req.guid or nil) end
  end)
  if not ok then return nil, e, code end
  local h, header, err
  h, header, err, code = start_now(self, c, r, req, opts)
  if h == nil then return nil, header, err end -- refused before sending
  job.h, job.header, job.whole, job.ready = h, header, h == false, true
  if r.post == "correlated" then
    return true, { deferred = true, key = type(req) == "table" and rawget(req, "key") or nil }
  end
  return true, { deferred = true, guid = type(req) == "table" and rawget(req, "guid") or nil }
end

-- A post with retries (the puts' retry option, post_event, post_correlated_event), from a
-- phase that cannot wait: the key is fixed and the first attempt sent now, the rest in the
-- timer.
local function deferred_put_with_retry(self, c, r, req, opts, policy, what)
  sync_only_options(r, opts)
  local phase = phase_name()
  local correlated = r.post == "correlated"
  local get_rpc = correlated and RPC.get_correlated_event or RPC.get_external_event
  local function put(rq, o) return attempt(self, c, r, rq, o) end
  local function get(id, o) return attempt(self, c, get_rpc, id, o) end
  local st = (correlated and retry.prepare_correlated or retry.prepare)(put, req, opts, policy, C.timeout(c))
  local job = { rpc = r.rpc }
  local ok, e, code = defer_timer(what, job, function(j)
    local first
    if not j.whole then first = function(rq, o) return finish(self, c, r, rq, o, j.h, j.header) end end
    local v, err = retry.run(st, put, get, first)
    if not v then log_failure(what, phase, err, st.req.guid) end
  end)
  if not ok then return nil, e, code end
  local o1 = {}
  for k, v in pairs(st.call_opts) do o1[k] = v end
  o1.timeout = retry.attempt_timeout(st)
  local h, header, err
  h, header, err, code = start_now(self, c, r, st.req, o1)
  if h == nil then return nil, header, err end -- refused before sending: not retried
  job.h, job.header, job.whole, job.ready = h, header, h == false, true
  if correlated then return true, { deferred = true, key = st.req.key } end
  return true, { deferred = true, guid = st.req.guid }
end

-- A post whose content must first be checked against its def (validate), from a phase that
-- cannot wait: the check may need to read the def, so the whole call goes to the timer (the
-- guid fixed now, when it retries). what(self, req, opts) is the blocking method to call there.
local function deferred_whole(self, r, req, opts, what)
  local phase = phase_name()
  if r.post == "event" and type(req) == "table" and rawget(req, "guid") == nil
     and type(opts) == "table" and rawget(opts, "retry") then
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    copy.guid = retry.new_guid()
    req = copy
  end
  local job = { rpc = r.rpc, ready = true }
  local ok, e, code = defer_timer(what, job, function()
    local v, err = self[r.name](self, req, opts)
    if not v then log_failure(what, phase, err, type(req) == "table" and rawget(req, "guid") or nil) end
  end)
  if not ok then return nil, e, code end
  if r.post == "correlated" then
    return true, { deferred = true, key = type(req) == "table" and rawget(req, "key") or nil }
  end
  return true, { deferred = true, guid = type(req) == "table" and rawget(req, "guid") or nil }
end

---------------------------------------------------------------------------------------------
-- 2. Retry (posts only)

local function without(opts, a, b)
  local o = {}
  for k, v in pairs(opts) do if k ~= a and k ~= b then o[k] = v end end
  return o
end

-- A put with retries (policy: true or a table; false or nil: one plain attempt). what: the
-- method the caller called (post_event), for the log of a deferred call.
local function put_with_retry(self, c, r, req, opts, policy, what)
  if host_mode() == "defer" then
    if not policy then return deferred(self, c, r, req, opts) end
    return deferred_put_with_retry(self, c, r, req, opts, policy, what or r.name)
  end
  if not policy then return attempt(self, c, r, req, opts) end
  local put = function(rq, o) return attempt(self, c, r, rq, o) end
  if r.post == "correlated" then
    return retry.put_correlated(put, function(id, o) return attempt(self, c, RPC.get_correlated_event, id, o) end,
                                req, opts, policy, C.timeout(c))
  end
  return retry.put(put, function(id, o) return attempt(self, c, RPC.get_external_event, id, o) end,
                   req, opts, policy, C.timeout(c))
end

-- The def a request names (external_event_def_name, or external_event_def_id.name), read raw.
local function def_name_of(req)
  if type(req) == "string" then return req end
  if type(req) ~= "table" then return nil end
  local name = rawget(req, "external_event_def_name") or rawget(req, "name")
  local id = rawget(req, "external_event_def_id")
  if name == nil and type(id) == "table" then name = rawget(id, "name") end
  return name
end

-- 1b. The content checked against its def's type (littlehorse.validate): nil, or the error.
local function check_content(self, c, r, req, opts)
  if type(req) ~= "table" then return nil end -- the call raises its usual misuse error
  local cache = self._defs
  if not cache then
    cache = validate.option(true)
    self._defs = cache
  end
  local t = type(opts) == "table" and rawget(opts, "timeout") or nil
  local get_opts = type(t) == "number" and { timeout = t } or nil
  local function get(name) return (attempt(self, c, RPC.get_external_event_def, name, get_opts)) end
  return validate.check(cache, r.rpc, get, def_name_of(req), rawget(req, "content"))
end

-- A put (put_external_event, put_correlated_event) with `retry` or `validate` to honour.
-- what: the method the caller called, for the log of a deferred call.
local function post(self, c, r, req, opts, what)
  local policy, check, given = nil, self._validate, opts
  if type(opts) == "table" then
    policy = rawget(opts, "retry")
    local v = rawget(opts, "validate")
    if v ~= nil then
      if type(v) ~= "boolean" then misuse.bad(r.name, 2, "validate: expected a boolean, got " .. type(v)) end
      check = v
    end
    if policy ~= nil or v ~= nil then opts = without(opts, "retry", "validate") end
  end
  if check and host_mode() == "defer" then return deferred_whole(self, r, req, given, what or r.name) end
  if check then
    local err = check_content(self, c, r, req, opts)
    if err then return nil, err, err.code end
  end
  return put_with_retry(self, c, r, req, opts, policy, what)
end

---------------------------------------------------------------------------------------------
-- Async calls of a client with a token: the handle

-- Like a littlehorse.call handle (same methods), for a client with a token: when the server
-- answers UNAUTHENTICATED, the token is refreshed and the call sent once more; the handle
-- then reports the second call's results. With an on_done callback this happens inside
-- client:poll(), and done() turns true once the callback has run.
local AuthCall = {}
local AuthCall_mt = { __index = AuthCall, __name = "littlehorse.call" }
AuthCall_mt.__tostring = function(h) return tostring(h._h) end
AuthCall_mt.__close = function(h) h:close() end

local function settle(h, a, b, c)
  h._done, h._r1, h._r2, h._r3 = true, a, b, c
  return a, b, c
end

-- Start (or restart) h's call with a fresh token; with_callback: the C handle delivers to
-- h's callback in poll(). Returns true, or settles h with the failure and returns false.
local function start(h, with_callback)
  local o, header, code = authorize(h._auth, h._rpc, h._opts)
  if not o then settle(h, nil, header, code); return false end
  if type(o) == "table" then o.on_done = with_callback and h._callback or nil end
  local ch, err
  ch, err, code = h._rpc.start(h._core, h._req, o)
  if not ch then settle(h, nil, err, code); return false end
  h._h, h._header = ch, header
  return true
end

-- The first answer was UNAUTHENTICATED: send again once, unless the caller gave up on it.
local function again(h, code)
  if code ~= "UNAUTHENTICATED" or h._again or h._cancelled or h._closed then return false end
  h._again = true
  h._auth:invalidate(h._header)
  return true
end

local function auth_async(self, c, r, req, opts)
  local h = setmetatable({ _auth = self._auth, _core = c, _rpc = r, _req = req, _opts = opts }, AuthCall_mt)
  local on_done = type(opts) == "table" and rawget(opts, "on_done") or nil
  if type(on_done) == "function" then
    h._callback = function(a, b, code)
      if again(h, code) then
        if start(h, true) then return end -- delivered to this callback again
        a, b, code = h._r1, h._r2, h._r3
      end
      settle(h, a, b, code)
      return on_done(a, b, code)
    end
  end
  local o, header, code = authorize(self._auth, r, opts)
  if not o then return nil, header, code end
  if h._callback then o.on_done = h._callback end
  local ch, err
  ch, err, code = r.start(c, req, o)
  if not ch then return nil, err, code end
  h._h, h._header = ch, header
  return h
end

function AuthCall:wait(seconds)
  if self._done then return self._r1, self._r2, self._r3 end
  local deadline = type(seconds) == "number" and seconds >= 0 and core.now() + seconds
  while true do
    local a, b, code = self._h:wait(deadline and math.max(0, deadline - core.now()) or seconds)
    if a == false then return false end
    if not again(self, code) then return settle(self, a, b, code) end
    if not start(self, false) then return self._r1, self._r2, self._r3 end -- the caller takes it
  end
end

function AuthCall:done()
  if self._done or self._closed then return true end
  if self._callback then return false end -- until poll() delivers it
  if not self._h:done() then return false end
  return self:wait(0) ~= false and self._done == true
end

function AuthCall:cancel()
  self._cancelled = true
  return self._h:cancel()
end

function AuthCall:close()
  self._closed = true
  return self._h:close()
end

function AuthCall:id()
  return self._h:id()
end

---------------------------------------------------------------------------------------------
-- The client's methods

-- client:<rpc>(req [, opts]) and client:<rpc>_async(req [, opts]) for every row of RPCS.
for _, r in ipairs(RPCS) do
  local name, async = r.name, r.async
  if r.post then
    Client[name] = function(self, req, opts)
      local c = CORE[self] or bad_self(self, name)
      -- call options are read raw, as the C side reads them: a retry behind __index is not seen
      if self._validate or (type(opts) == "table" and (rawget(opts, "retry") ~= nil or rawget(opts, "validate") ~= nil)) then
        return post(self, c, r, req, opts)
      end
      if host_mode() == "defer" then return deferred(self, c, r, req, opts) end
      return attempt(self, c, r, req, opts)
    end
  elseif r.def_change then
    Client[name] = function(self, req, opts)
      local c = CORE[self] or bad_self(self, name)
      local v, err, code
      if host_mode() == "defer" then v, err, code = deferred(self, c, r, req, opts)
      else v, err, code = attempt(self, c, r, req, opts) end
      if self._defs then validate.forget(self._defs, def_name_of(req)) end
      return v, err, code
    end
  else
    Client[name] = function(self, req, opts)
      local c = CORE[self] or bad_self(self, name)
      if host_mode() == "defer" then
        if not r.write then cannot_wait(name) end
        return deferred(self, c, r, req, opts)
      end
      return attempt(self, c, r, req, opts)
    end
  end
  Client[async] = function(self, req, opts)
    local c = CORE[self] or bad_self(self, async)
    -- the C side refuses `validate` in the options of an async put (read raw, as here)
    if not self._auth then return r.start(c, req, opts) end
    -- with a token, the same refusal before a token is fetched for the call
    if r.post and type(opts) == "table" and rawget(opts, "validate") ~= nil then
      misuse.bad(async, 2, "validate: an async call does not validate (the blocking " .. name .. " does)")
    end
    return auth_async(self, c, r, req, opts)
  end
end

local POST_OPTIONS = misuse.names { "guid", "thread_run_number", "node_run_position", "timeout", "metadata",
                                    "reply", "retry", "validate" }
local POST_CORRELATED_OPTIONS = misuse.names { "timeout", "metadata", "reply", "retry", "validate" }
-- Which argument of post_event / post_correlated_event a request field came from.
local POST_ARG = { wf_run_id = 1, key = 1, external_event_def_name = 2, content = 3 }

-- A misuse error of the put call a post made (put_external_event for post_event, ...), as the
-- post's own.
local function as_post_error(e, put, post_name)
  if type(e) ~= "string" then return e end
  local pos, n, body = e:match("^(.-)bad argument #(%d) to '" .. put .. "' %((.*)%)$")
  if not pos then return e end
  local argn = n == "1" and POST_ARG[body:match("^[%w_]+")] or 4
  return pos .. "bad argument #" .. argn .. " to '" .. post_name .. "' (" .. body .. ")"
end

local NO_OPTIONS = {}

--- client:post_event(wf_run_id, def_name, content [, opts]): put_external_event with
-- retries by default (retry = false: one plain attempt).
function Client:post_event(wf_run_id, def_name, content, opts)
  local c = CORE[self] or bad_self(self, "post_event")
  if opts == nil then
    opts = NO_OPTIONS
  elseif type(opts) ~= "table" then
    misuse.bad("post_event", 4, "table of options expected, got " .. type(opts))
  else
    misuse.check_keys(opts, POST_OPTIONS, "post_event", 4, "option")
  end
  local req = { wf_run_id = wf_run_id, external_event_def_name = def_name, content = content,
                guid = opts.guid, thread_run_number = opts.thread_run_number,
                node_run_position = opts.node_run_position }
  local call_opts = { timeout = opts.timeout, metadata = opts.metadata, reply = opts.reply,
                      retry = opts.retry == nil or opts.retry, validate = opts.validate }
  local ok, ev, info, code = pcall(post, self, c, RPC.put_external_event, req, call_opts, "post_event")
  if not ok then error(as_post_error(ev, "put_external_event", "post_event"), 0) end
  return ev, info, code
end

--- client:post_correlated_event(key, def_name, content [, opts]): put_correlated_event with
-- retries by default (retry = false: one plain attempt); the key is the idempotency key.
function Client:post_correlated_event(key, def_name, content, opts)
  local c = CORE[self] or bad_self(self, "post_correlated_event")
  if opts == nil then
    opts = NO_OPTIONS
  elseif type(opts) ~= "table" then
    misuse.bad("post_correlated_event", 4, "table of options expected, got " .. type(opts))
  else
    misuse.check_keys(opts, POST_CORRELATED_OPTIONS, "post_correlated_event", 4, "option")
  end
  local req = { key = key, external_event_def_name = def_name, content = content }
  local call_opts = { timeout = opts.timeout, metadata = opts.metadata, reply = opts.reply,
                      retry = opts.retry == nil or opts.retry, validate = opts.validate }
  local ok, ev, info, code = pcall(post, self, c, RPC.put_correlated_event, req, call_opts, "post_correlated_event")
  if not ok then error(as_post_error(ev, "put_correlated_event", "post_correlated_event"), 0) end
  return ev, info, code
end

---------------------------------------------------------------------------------------------
-- Iterators over pages (littlehorse.pages)

-- `since` / `upto` as timestamp objects (lh.timestamp takes epoch seconds, RFC 3339 text,
-- { seconds =, nanos = } and timestamp objects).
local function timestamp_option(fname, key, v)
  local ok, ts = pcall(values.timestamp, v)
  if ok then return ts end
  local why = tostring(ts):match("%((.*)%)$") or tostring(ts)
  misuse.bad(fname, 1, key .. ": " .. why)
end

local function page_size(fname, argn, v)
  if v == nil then return nil end
  if type(v) ~= "number" or v < 1 or v > 2147483647 or v ~= math.floor(v) then
    misuse.bad(fname, argn, "page_size: expected an integer from 1 (the server never ends a listing with a page " ..
                         "size of 0 or less)")
  end
  return v
end

local function def_option(fname, req, v)
  if type(v) == "string" then req.external_event_def_name = v
  elseif type(v) == "table" then req.external_event_def_id = v
  else misuse.bad(fname, 1, "def: expected the ExternalEventDef's name, got " .. type(v)) end
end

local function call_options(o)
  if o.timeout == nil and o.metadata == nil then return nil end
  return { timeout = o.timeout, metadata = o.metadata }
end

local function iterate(self, method, rpc, req, o)
  local m = Client[method]
  return pages.new(function(rq, co) return m(self, rq, co) end, req, call_options(o), rpc)
end

local LIST_OPTIONS = misuse.names { "page_size", "bookmark", "timeout", "metadata" }

--- client:external_events(wf_run_id [, opts]) -> an iterator over the WfRun's ExternalEvents.
function Client:external_events(wf_run_id, opts)
  local fname = "external_events"
  if not CORE[self] then bad_self(self, fname) end
  if type(wf_run_id) ~= "string" and type(wf_run_id) ~= "table" then
    misuse.bad(fname, 1, "expected a WfRunId (a string, or { id =, parent_wf_run_id = }), got " .. type(wf_run_id))
  end
  opts = opts or NO_OPTIONS
  if type(opts) ~= "table" then misuse.bad(fname, 2, "table of options expected, got " .. type(opts)) end
  misuse.check_keys(opts, LIST_OPTIONS, fname, 2, "option")
  local req = { wf_run_id = wf_run_id, limit = page_size(fname, 2, opts.page_size), bookmark = opts.bookmark }
  return iterate(self, "list_external_events", "ListExternalEvents", req, opts)
end

local SEARCH_EVENT_OPTIONS = misuse.names { "def", "since", "upto", "claimed", "page_size", "bookmark", "timeout",
                                            "metadata" }
local SEARCH_CORRELATED_OPTIONS = misuse.names { "def", "since", "upto", "has_external_events", "page_size",
                                                 "bookmark", "timeout", "metadata" }
local SEARCH_DEF_OPTIONS = misuse.names { "prefix", "page_size", "bookmark", "timeout", "metadata" }

local function search_request(fname, o, names, flag, flag_field)
  if type(o) ~= "table" then misuse.bad(fname, 1, "table of options expected, got " .. type(o)) end
  misuse.check_keys(o, names, fname, 1, "option")
  local req = { limit = page_size(fname, 1, o.page_size), bookmark = o.bookmark }
  if o.def == nil then misuse.bad(fname, 1, "def: required (the ExternalEventDef's name)") end
  def_option(fname, req, o.def)
  if o.since ~= nil then req.earliest_start = timestamp_option(fname, "since", o.since) end
  if o.upto ~= nil then req.latest_start = timestamp_option(fname, "upto", o.upto) end
  local f = o[flag]
  if f ~= nil then
    if type(f) ~= "boolean" then misuse.bad(fname, 1, flag .. ": expected a boolean, got " .. type(f)) end
    req[flag_field] = f
  end
  return req
end

--- client:external_event_ids{ def =, since =, upto =, claimed = } -> an iterator over the ids of
-- a def's ExternalEvents (SearchExternalEvent).
function Client:external_event_ids(o)
  local fname = "external_event_ids"
  if not CORE[self] then bad_self(self, fname) end
  local req = search_request(fname, o, SEARCH_EVENT_OPTIONS, "claimed", "is_claimed")
  return iterate(self, "search_external_events", "SearchExternalEvent", req, o)
end

--- client:correlated_event_ids{ def =, since =, upto =, has_external_events = } -> an iterator
-- over the ids of a def's CorrelatedEvents (SearchCorrelatedEvent).
function Client:correlated_event_ids(o)
  local fname = "correlated_event_ids"
  if not CORE[self] then bad_self(self, fname) end
  local req = search_request(fname, o, SEARCH_CORRELATED_OPTIONS, "has_external_events", "has_external_events")
  return iterate(self, "search_correlated_events", "SearchCorrelatedEvent", req, o)
end

--- client:external_event_def_ids([{ prefix = }]) -> an iterator over ExternalEventDef ids.
function Client:external_event_def_ids(o)
  local fname = "external_event_def_ids"
  if not CORE[self] then bad_self(self, fname) end
  o = o or NO_OPTIONS
  if type(o) ~= "table" then misuse.bad(fname, 1, "table of options expected, got " .. type(o)) end
  misuse.check_keys(o, SEARCH_DEF_OPTIONS, fname, 1, "option")
  if o.prefix ~= nil and type(o.prefix) ~= "string" then
    misuse.bad(fname, 1, "prefix: expected a string, got " .. type(o.prefix))
  end
  local req = { prefix = o.prefix, limit = page_size(fname, 1, o.page_size), bookmark = o.bookmark }
  return iterate(self, "search_external_event_defs", "SearchExternalEventDef", req, o)
end

function Client:poll(seconds) return C.poll(CORE[self] or bad_self(self, "poll"), seconds) end
function Client:fd() return C.fd(CORE[self] or bad_self(self, "fd")) end
function Client:in_flight() return C.in_flight(CORE[self] or bad_self(self, "in_flight")) end
function Client:target() return C.target(CORE[self] or bad_self(self, "target")) end
function Client:timeout() return C.timeout(CORE[self] or bad_self(self, "timeout")) end
function Client:is_closed() return C.is_closed(CORE[self] or bad_self(self, "is_closed")) end
function Client:close() return C.close(CORE[self] or bad_self(self, "close")) end

Client_mt.__tostring = function(self) return tostring(CORE[self]) end
Client_mt.__close = function(self) return C.close(CORE[self]) end

---------------------------------------------------------------------------------------------

local M = { Client = Client, AuthCall = AuthCall }

local function log_warning(w)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and ngx.log and ngx.WARN then ngx.log(ngx.WARN, w)
  elseif warn then warn(w) end
end

--- lh.client(opts) -> client: settings from opts, the LHC_* environment, the properties file
-- and the defaults (littlehorse.config; docs/config.md). Warnings (a clamped keepalive,
-- ignored certificate settings) go to ngx.log(ngx.WARN) under OpenResty, else to warn().
function M.new(opts)
  if resty._in_master() then
    misuse.raise("littlehorse: no clients in init_by_lua (the nginx master): gRPC must not start before " ..
                 "nginx forks its workers. Make clients in init_worker_by_lua, or lazily in a handler.")
  end
  local checks = false
  if type(opts) == "table" and rawget(opts, "validate") ~= nil then
    checks = validate.option(rawget(opts, "validate"))
    local o = {}
    for k, v in pairs(opts) do if k ~= "validate" then o[k] = v end end
    opts = o
  end
  local cfg = config.load(opts)
  for _, w in ipairs(cfg.warnings) do log_warning(w) end
  local c = core.client {
    target = cfg.target, timeout = cfg.timeout, max_send_size = cfg.max_send_size, tenant = cfg.tenant,
    tls = cfg.tls, keepalive_time_ms = cfg.keepalive_time_ms, keepalive_timeout_ms = cfg.keepalive_timeout_ms,
    lb_policy = cfg.lb_policy, max_receive_size = cfg.max_receive_size,
  }
  if not C then bind_c_methods(c) end
  local self = setmetatable({ _core = c, _auth = cfg.auth or false, _validate = checks and true or false,
                              _defs = checks or nil }, Client_mt)
  CORE[self] = c
  return resty._track(self)
end

return M
