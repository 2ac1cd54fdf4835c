-- Exactly-once posting: the retry policy for PutExternalEvent and PutCorrelatedEvent.
--
-- Why it is safe: one guid is fixed before the first attempt and sent on every attempt, so
-- the server stores the event at most once (it keys events as wf_run_id/def/guid). An attempt
-- whose reply was lost, but whose event was stored, makes the next attempt answer
-- ALREADY_EXISTS; that means "stored", so the stored event is fetched and returned as success.
local core = require "littlehorse.core"
local resty = require "littlehorse.resty"
local misuse = require "littlehorse.misuse"

local M = {}

-- Codes worth another attempt: the server was unreachable, too slow, aborted, or over quota.
M.RETRYABLE = { UNAVAILABLE = true, DEADLINE_EXCEEDED = true, ABORTED = true, RESOURCE_EXHAUSTED = true }
-- Codes that another attempt cannot change; a retry_on that names one of them is refused.
M.NEVER = { INVALID_ARGUMENT = true, PERMISSION_DENIED = true, UNAUTHENTICATED = true, NOT_FOUND = true }

M.DEFAULTS = {
  attempts = 5,            -- attempts in all, the first one included
  initial_backoff = 0.1,   -- seconds: the cap of the first backoff
  max_backoff = 5,         -- seconds: the largest cap
  multiplier = 2,          -- cap growth per attempt
  deadline = 30,           -- seconds for the whole operation, sleeps included
}

--- lh.new_guid(): 128 random bits from the OS as 32 lowercase hex characters.
local HEX16 = string.rep("%02x", 16)
function M.new_guid()
  return string.format(HEX16, string.byte(core.random_bytes(16), 1, 16))
end

-- ngx.sleep counts whole milliseconds, and a delay under 1 ms is ngx.sleep(0), which stock
-- nginx (without OpenResty's delayed-events patch) warns about in the error log on every call.
local function ngx_sleep_at_least_1ms(seconds)
  return ngx.sleep(seconds >= 0.001 and seconds or 0.001)
end

--- The sleep to use when the caller gives none: ngx.sleep (never under 1 ms) inside OpenResty
-- phases that may yield (so the nginx worker keeps serving), else a plain C sleep.
function M.default_sleep()
  if resty._can_yield() and ngx.sleep then return ngx_sleep_at_least_1ms end
  return core.sleep
end

local function bad(name, msg)
  misuse.raise(string.format("bad retry option %s: %s", name, msg))
end

local function positive(opts, name, allow_zero)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if type(v) ~= "number" or v ~= v or v == math.huge or v < 0 or (v == 0 and not allow_zero) then
    bad(name, "expected a positive number")
  end
  return v
end

local OPTIONS = misuse.names { "attempts", "initial_backoff", "max_backoff", "multiplier", "deadline",
                               "per_attempt_timeout", "retry_on", "sleep", "on_retry" }
-- Every gRPC status name but OK, for retry_on.
local STATUS = {}
for code = 1, 16 do STATUS[#STATUS + 1] = core.status_name(code) end
STATUS = misuse.names(STATUS)

--- Normalise `retry = true | { ... }` into a policy table; raises on bad options.
function M.policy(opts)
  if opts == true or opts == nil then opts = {} end
  if type(opts) ~= "table" then bad("retry", "expected true, false or a table, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS.set[k] then misuse.raise("bad retry option " .. misuse.unknown(k, OPTIONS, "option")) end
  end
  local p = {
    attempts = opts.attempts or M.DEFAULTS.attempts,
    initial_backoff = positive(opts, "initial_backoff", true),
    max_backoff = positive(opts, "max_backoff", true),
    multiplier = positive(opts, "multiplier"),
    deadline = positive(opts, "deadline"),
    per_attempt_timeout = opts.per_attempt_timeout,
    sleep = opts.sleep,
    on_retry = opts.on_retry,
    retry_on = M.RETRYABLE,
  }
  if type(p.attempts) ~= "number" or p.attempts ~= math.floor(p.attempts) or p.attempts < 1 then bad("attempts", "expected an integer >= 1") end
  if p.multiplier < 1 then bad("multiplier", "must be >= 1") end
  if p.per_attempt_timeout ~= nil then positive(opts, "per_attempt_timeout") end
  if p.sleep ~= nil and type(p.sleep) ~= "function" then bad("sleep", "expected a function") end
  if p.on_retry ~= nil and type(p.on_retry) ~= "function" then bad("on_retry", "expected a function") end
  if opts.retry_on ~= nil then
    if type(opts.retry_on) ~= "table" then bad("retry_on", "expected a list of status names") end
    local set = {}
    for k, code in pairs(opts.retry_on) do
      if type(k) ~= "number" then bad("retry_on", "expected a list of status names, got a " .. type(k) .. " key") end
      if not STATUS.set[code] then
        local near = type(code) == "string" and misuse.nearest(code:upper(), STATUS.list)
        bad("retry_on", string.format("%s is not a gRPC status name%s", type(code) == "string" and code or "a " .. type(code),
                                      near and " (did you mean " .. near .. "?)" or " like \"UNAVAILABLE\""))
      end
      if M.NEVER[code] then bad("retry_on", code .. " is never retried: another attempt cannot change it") end
      set[code] = true
    end
    p.retry_on = set
  end
  return p
end

-- Full jitter: a uniform delay in [0, cap], the cap growing exponentially to max_backoff.
local function backoff(p, attempt)
  local cap = math.min(p.max_backoff, p.initial_backoff * p.multiplier ^ (attempt - 1))
  return cap * math.random()
end

-- How a post is made idempotent: the request field that keys it (fixed before the first
-- attempt), and the id that reads back what an earlier attempt stored.
local EVENT = {
  field = "guid",
  key = function(r) if r.guid == nil then r.guid = M.new_guid() end return r.guid end,
  id = function(r)
    return { wf_run_id = r.wf_run_id, guid = r.guid, external_event_def_name = r.external_event_def_name,
             external_event_def_id = r.external_event_def_id }
  end,
}
-- A CorrelatedEvent is keyed by its correlation key (and def): the caller's, never made up.
local CORRELATED = {
  field = "key",
  key = function(r) return r.key end,
  id = function(r)
    return { key = r.key, external_event_def_name = r.external_event_def_name,
             external_event_def_id = r.external_event_def_id }
  end,
}

-- The first half of a post: checks the policy (misuse raises here), fixes the key and the
-- deadline. Returns the state run() takes: st.req is the request every attempt sends.
local function prepare(how, put, req, opts, retry_opts, timeout)
  local p = M.policy(retry_opts)
  -- a request or a timeout the C side would refuse: let it raise its usual misuse error
  -- (before anything is sent), rather than retry with a timeout made up here
  local t = opts.timeout
  if type(req) ~= "table" or (t ~= nil and (type(t) ~= "number" or not (t > 0 and t <= 1e9)))
     or (how == CORRELATED and req.key == nil) then
    put(req, opts)
  end
  local r = {}
  for k, v in pairs(req) do r[k] = v end
  local key = how.key(r)
  local call_opts = {}
  for k, v in pairs(opts) do call_opts[k] = v end
  return { how = how, key = key, policy = p, req = r, opts = opts, call_opts = call_opts,
           per_attempt = p.per_attempt_timeout or opts.timeout or timeout, deadline = core.now() + p.deadline }
end

--- The timeout of the next attempt of st: its per-attempt timeout, within the deadline.
function M.attempt_timeout(st)
  return math.max(0.001, math.min(st.per_attempt, st.deadline - core.now()))
end

--- The second half of a post: the attempts. first(req, call_opts), when given, is the first
-- attempt's outcome (a call started before, awaited now) instead of put's.
function M.run(st, put, get, first)
  local how, p, r, opts, call_opts = st.how, st.policy, st.req, st.opts, st.call_opts
  local function info(attempt, duplicate)
    return { attempts = attempt, duplicate = duplicate, [how.field] = st.key }
  end
  local sleep = p.sleep or M.default_sleep() -- where it runs (an nginx timer: ngx.sleep)
  local attempt = 0
  while true do
    attempt = attempt + 1
    call_opts.timeout = M.attempt_timeout(st)
    local ev, err, code
    if attempt == 1 and first then ev, err, code = first(r, call_opts) else ev, err, code = put(r, call_opts) end
    if ev then return ev, info(attempt, false) end
    if code == "ALREADY_EXISTS" and opts.reply == false then
      return true, info(attempt, true) -- stored; not read
    elseif code == "ALREADY_EXISTS" then
      -- Stored by an earlier attempt (or an earlier run with the same key): fetch it.
      call_opts.timeout = M.attempt_timeout(st)
      ev, err, code = get(how.id(r), call_opts)
      if ev then return ev, info(attempt, true) end
      if code == "NOT_FOUND" and how == CORRELATED then
        -- It existed a moment ago: correlated and deleted since (delete_after_first_correlation),
        -- expired or deleted. Stored all the same; posting again would make a second one.
        local i = info(attempt, true)
        i.deleted = true
        return true, i
      end
    end
    err.attempts = attempt
    if not p.retry_on[code] or err.sent == false or attempt >= p.attempts then return nil, err, code end
    local delay = err.retry_delay or backoff(p, attempt)
    if core.now() + delay >= st.deadline then return nil, err, code end
    if p.on_retry then p.on_retry(err, attempt, delay) end
    sleep(delay)
  end
end

--- The first half of put() (its checks, the guid, the deadline), for run() later.
function M.prepare(put, req, opts, retry_opts, timeout)
  return prepare(EVENT, put, req, opts, retry_opts, timeout)
end

--- The first half of put_correlated(), for run() later.
function M.prepare_correlated(put, req, opts, retry_opts, timeout)
  return prepare(CORRELATED, put, req, opts, retry_opts, timeout)
end

--- Post an ExternalEvent with retries: put(req, opts) and get(id, opts) make one attempt each
-- (the client adds its token and the nginx wait). `opts` are the call options every attempt
-- takes, with its own timeout (per_attempt_timeout, else opts.timeout, else `timeout`, the
-- client's); `retry_opts` the policy options. Returns event, info | nil, err, code where info
-- is { attempts = n, duplicate = bool, guid = g } and err.attempts says how many were made.
-- A request the client refused before sending (err.sent == false) is never retried.
function M.put(put, get, req, opts, retry_opts, timeout)
  return M.run(M.prepare(put, req, opts, retry_opts, timeout), put, get)
end

--- The same for a CorrelatedEvent, keyed by req.key: info is { attempts =, duplicate =, key = }
-- (and deleted = true, with `true` for the event, when it was stored but is gone already).
function M.put_correlated(put, get, req, opts, retry_opts, timeout)
  return M.run(M.prepare_correlated(put, req, opts, retry_opts, timeout), put, get)
end

return M
