-- littlehorse.outbox: a durable outbox (docs/outbox.md, docs/api.md). Not a module of its own
-- API: use it through require("littlehorse").outbox.
--
-- A post is converted once (misuse raises then, naming the field), stored durably in a local
-- SQLite file by the outbox's writer thread (many posts share one fsync), and only then
-- acknowledged with its guid; delivery sends the stored bytes with that guid until the
-- server has them (littlehorse.outbox_delivery), so each post is stored on the server exactly
-- once. The file is touched only by the writer thread: in nginx, a post waits on the wake
-- socket like a call does, and the worker's event loop never waits for the disk.
local core = require "littlehorse.core"
local resty = require "littlehorse.resty"
local misuse = require "littlehorse.misuse"
local delivery = require "littlehorse.outbox_delivery"

local type, rawget = type, rawget
local can_yield = resty._can_yield

local Outbox = {}
local Outbox_mt = { __index = Outbox, __name = "littlehorse.outbox" }

-- Each outbox's C object (littlehorse.core's), its options and its deliverer, by outbox.
local COB = setmetatable({}, { __mode = "k" })

local OPTIONS = misuse.names { "client", "max_rows", "max_bytes", "max_age", "lease", "busy_timeout", "check",
                               "ordered", "batch", "timeout", "initial_backoff", "max_backoff", "multiplier",
                               "poll_interval" }
local STORAGE = { "max_rows", "max_bytes", "max_age", "lease", "busy_timeout", "check", "ordered" }

local DEFAULTS = {
  batch = 64,             -- records delivered at once (claimed per round, calls in flight)
  initial_backoff = 1,    -- seconds: the cap of a record's first retry delay
  max_backoff = 60,       -- seconds: the largest cap
  multiplier = 2,
  poll_interval = 1,      -- seconds: how often an idle deliverer looks for due records
  lease = 60,             -- (the C side's default; delivery checks timeout against it)
  busy_timeout = 5,
}

local function ngx_api() return rawget(_G, "ngx") end

-- Inside nginx, in a phase that cannot wait for anything (log, header_filter, body_filter,
-- set, init_worker, ...).
local function cannot_wait()
  local ngx = ngx_api()
  return type(ngx) == "table" and ngx.get_phase ~= nil and not can_yield()
end

local function bad_self(self, method)
  misuse.bad(method, 1, string.format("littlehorse.outbox expected, got %s; call it as outbox:%s(...)",
                                      type(self), method))
end

local function number_opt(opts, name, lo, allow_lo, default)
  local v = rawget(opts, name)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v == math.huge or v < lo or (v == lo and not allow_lo) then
    misuse.bad("outbox", 2, string.format("%s: expected a number %s %s, got %s", name, allow_lo and ">=" or ">",
                                          tostring(lo), type(v) == "number" and tostring(v) or type(v)))
  end
  return v
end

-- The delivery settings, checked (the storage ones are the C side's to check).
local function delivery_config(opts, client)
  local cfg = {
    batch = number_opt(opts, "batch", 1, true, DEFAULTS.batch),
    initial_backoff = number_opt(opts, "initial_backoff", 0, true, DEFAULTS.initial_backoff),
    max_backoff = number_opt(opts, "max_backoff", 0, true, DEFAULTS.max_backoff),
    multiplier = number_opt(opts, "multiplier", 1, true, DEFAULTS.multiplier),
    poll_interval = number_opt(opts, "poll_interval", 0, false, DEFAULTS.poll_interval),
    timeout = number_opt(opts, "timeout", 0, false, client and client:timeout() or nil),
    lease = number_opt(opts, "lease", 0, false, DEFAULTS.lease),
    busy_timeout = number_opt(opts, "busy_timeout", 0, true, DEFAULTS.busy_timeout),
  }
  if cfg.batch ~= math.floor(cfg.batch) or cfg.batch > 10000 then
    misuse.bad("outbox", 2, "batch: expected an integer from 1 to 10000")
  end
  if cfg.timeout and cfg.timeout >= cfg.lease then
    misuse.bad("outbox", 2, string.format("timeout (%g s) must be shorter than lease (%g s): a record whose lease " ..
                                          "ends while its call is in flight may be sent twice at once", cfg.timeout, cfg.lease))
  end
  -- a job outlives its deadline only when the disk stalls; then the caller gets an answer
  cfg.job_limit = cfg.busy_timeout + 60
  return cfg
end

--- lh.outbox(path [, opts]) -> outbox | nil, err, code
local function new(path, opts)
  if resty._in_master() then
    misuse.raise("littlehorse: no outboxes in init_by_lua (the nginx master): open them in init_worker_by_lua, " ..
                 "so that each worker has its own writer thread and SQLite connection")
  end
  if type(path) ~= "string" then misuse.bad("outbox", 1, "expected a file path, got " .. type(path)) end
  if opts == nil then opts = {}
  elseif type(opts) ~= "table" then misuse.bad("outbox", 2, "table of options expected, got " .. type(opts))
  else misuse.check_keys(opts, OPTIONS, "outbox", 2, "option") end
  local client = rawget(opts, "client")
  if client ~= nil and (type(client) ~= "table" or getmetatable(client) == nil or
                        getmetatable(client).__name ~= "littlehorse.client") then
    misuse.bad("outbox", 2, "client: expected a client made by lh.client, got " .. type(client))
  end
  local cfg = delivery_config(opts, client)
  local storage = {}
  for _, k in ipairs(STORAGE) do storage[k] = rawget(opts, k) end
  local cob = core._outbox(path, storage)
  local self = setmetatable({ _client = client or false, _cfg = cfg, _deliverer = false,
                              _queued = { first = 1, last = 0 }, _queued_lost = 0 }, Outbox_mt)
  COB[self] = cob
  resty._track(self) -- resty.shutdown() closes it (queued posts are committed first)
  if cannot_wait() then return self end -- nginx's init_worker: the first jobs say how the open went
  local ok, err, code = self:ready()
  if not ok then
    cob:close()
    return nil, err, code
  end
  return self
end

-- Wait for a job: in nginx phases that can yield, on the wake socket (the worker goes on
-- serving); elsewhere, blocking the caller.
local function wait_job(cfg, job)
  if can_yield() then
    local a, b, c = resty._await(job, cfg.job_limit)
    if a == false then
      local _, err, code = core.new_error("DEADLINE_EXCEEDED", string.format(
        "the outbox's writer did not finish in %g s (a disk that does not answer?)", cfg.job_limit), "outbox")
      return nil, err, code
    end
    return a, b, c
  end
  return job:wait()
end

--- outbox:ready() -> true | nil, err, code: the file is open and usable, or why not.
function Outbox:ready()
  local cob = COB[self] or bad_self(self, "ready")
  return wait_job(self._cfg, cob:ready_async())
end

-- Posts made where nothing can wait for them (nginx phases that cannot yield) are queued, and
-- their jobs kept in self._queued until they settle: a timer of this worker waits for them
-- and reports each post that could not be stored (ngx.log at [error], stats().queued_lost),
-- whether or not this worker delivers (start()).
local function queued_opts(self)
  local o = self._queued_opts
  if o then return o end
  o = { on_done = function(id, err)
    if id then return end
    self._queued_lost = self._queued_lost + 1
    local ngx = ngx_api()
    ngx.log(ngx.ERR, "littlehorse: an outbox post made in a phase that cannot wait (",
            err.key and ("key " .. tostring(err.key) .. ", ") or "", "guid ", tostring(err.guid),
            ") was not stored: ", tostring(err))
  end }
  self._queued_opts = o
  return o
end

-- The timer that settles queued posts (their on_done runs in the outbox's poll).
local function collect_queued(premature, self)
  local q, cob = self._queued, COB[self]
  local ok, failure = pcall(function()
    while cob and not cob:is_closed() and q.first <= q.last do
      local job = q[q.first]
      if not premature and not job:done() then resty._await_done(job, self._cfg.job_limit) end
      cob:poll(0)
      while q.first <= q.last and q[q.first]:done() do
        q[q.first] = nil
        q.first = q.first + 1
      end
      if premature then break end -- the worker exits: resty.shutdown() commits what is queued
    end
  end)
  self._collecting = false
  if not ok then
    local ngx = ngx_api()
    ngx.log(ngx.ERR, "littlehorse: outbox ", tostring(cob and cob:path()), ": watching queued posts failed: ",
            tostring(failure))
  end
end

local function queue(self, job)
  local q = self._queued
  q.last = q.last + 1
  q[q.last] = job
  if self._collecting then return end
  local ngx = ngx_api()
  local ok, err = ngx.timer.at(0, collect_queued, self)
  if ok then
    self._collecting = true
  elseif not self._queue_timer_failed then -- the next queued post tries again
    self._queue_timer_failed = true
    ngx.log(ngx.ERR, "littlehorse: outbox ", tostring(COB[self]:path()),
            ": cannot start the timer that reports queued posts (", tostring(err), "); a post that is not ",
            "stored is reported once one starts")
  end
end

-- A post of kind "event" or "correlated": packed (misuse raises, as the fname method's own),
-- then waited for until durable, or queued where nothing can wait. Returns id, "durable" |
-- id, "queued" | nil, err, code; id is the guid (events) or the key (CorrelatedEvents).
local function post(self, correlated, req, fname, argn_of)
  local cob = COB[self]
  local queued = cannot_wait()
  local start = correlated and cob.post_correlated_async or cob.post_async
  local ok, job, id = pcall(start, cob, req, queued and queued_opts(self) or nil, fname)
  if not ok then error(argn_of and argn_of(job, fname) or job, 0) end
  if queued then
    queue(self, job)
    return id, "queued"
  end
  local g, err, code = wait_job(self._cfg, job)
  if g then return g, "durable" end
  if err and err.guid == nil and not correlated then err.guid = id end
  return nil, err, code
end

--- outbox:post(req) -> guid, "durable" | guid, "queued" | nil, err, code
function Outbox:post(req)
  if not COB[self] then bad_self(self, "post") end
  return post(self, false, req, "post")
end

--- outbox:post_correlated(req) -> key, "durable" | key, "queued" | nil, err, code: a
-- put_correlated_event request, stored for delivery.
function Outbox:post_correlated(req)
  if not COB[self] then bad_self(self, "post_correlated") end
  return post(self, true, req, "post_correlated")
end

local POST_OPTIONS = misuse.names { "guid", "thread_run_number", "node_run_position" }
-- Which argument of post_event / post_correlated_event a request field came from.
local POST_ARG = { wf_run_id = 1, key = 1, external_event_def_name = 2, content = 3 }

-- A misuse error of the request a post_event or post_correlated_event made, as its own.
local function as_arg_error(e, fname)
  if type(e) ~= "string" then return e end
  local pos, n, body = e:match("^(.-)bad argument #(%d) to '" .. fname .. "' %((.*)%)$")
  if not pos or n ~= "1" then return e end
  return pos .. "bad argument #" .. (POST_ARG[body:match("^[%w_]+")] or 4) .. " to '" .. fname .. "' (" .. body .. ")"
end

local function options(fname, opts, names)
  if opts == nil then return {} end
  if type(opts) ~= "table" then misuse.bad(fname, 4, "table of options expected, got " .. type(opts)) end
  misuse.check_keys(opts, names, fname, 4, "option")
  return opts
end

--- outbox:post_event(wf_run_id, def_name, content [, { guid =, thread_run_number =,
-- node_run_position = }]) -> as post(): client:post_event's arguments, stored for delivery.
function Outbox:post_event(wf_run_id, def_name, content, opts)
  if not COB[self] then bad_self(self, "post_event") end
  opts = options("post_event", opts, POST_OPTIONS)
  return post(self, false, { wf_run_id = wf_run_id, external_event_def_name = def_name, content = content,
                             guid = rawget(opts, "guid"), thread_run_number = rawget(opts, "thread_run_number"),
                             node_run_position = rawget(opts, "node_run_position") }, "post_event", as_arg_error)
end

--- outbox:post_correlated_event(key, def_name, content [, opts]) -> as post_correlated():
-- client:post_correlated_event's first three arguments (no options yet: opts must be empty).
function Outbox:post_correlated_event(key, def_name, content, opts)
  if not COB[self] then bad_self(self, "post_correlated_event") end
  if opts ~= nil then
    if type(opts) ~= "table" then misuse.bad("post_correlated_event", 4, "table of options expected, got " .. type(opts)) end
    local k = next(opts)
    if k ~= nil then
      misuse.bad("post_correlated_event", 4, tostring(k) .. ": unknown option (a CorrelatedEvent posted into an " ..
                                                "outbox takes none: its key is its idempotency key)")
    end
  end
  return post(self, true, { key = key, external_event_def_name = def_name, content = content },
              "post_correlated_event", as_arg_error)
end

--- outbox:post_async(req [, { on_done = fn }]) -> job, guid
function Outbox:post_async(req, opts)
  local cob = COB[self] or bad_self(self, "post_async")
  return cob:post_async(req, opts, "post_async")
end

--- outbox:post_correlated_async(req [, { on_done = fn }]) -> job, key
function Outbox:post_correlated_async(req, opts)
  local cob = COB[self] or bad_self(self, "post_correlated_async")
  return cob:post_correlated_async(req, opts, "post_correlated_async")
end

---------------------------------------------------------------------------------------------
-- Delivery

local function deliverer(self, method)
  local d = self._deliverer
  if d then return d end
  local client = self._client
  if not client then
    misuse.raise("littlehorse: this outbox has no client to deliver with: open it with " ..
                 "lh.outbox(path, { client = lh.client{...} }) to call " .. method .. "()")
  end
  local send_event, send_correlated, poll = client.put_external_event_packed_async,
                                            client.put_correlated_event_packed_async, client.poll
  d = delivery.new(COB[self], function(bytes, opts, kind)
                     if kind == "correlated" then return send_correlated(client, bytes, opts) end
                     return send_event(client, bytes, opts)
                   end,
                   function(seconds) return poll(client, seconds) end, self._cfg)
  self._deliverer = d
  return d
end

-- The counts of delivery outcomes since since (a copy of d.counts), as a table.
local function counts_since(d, since)
  local c = d.counts
  return { delivered = c.delivered - since.delivered, duplicates = c.duplicates - since.duplicates,
           retries = c.retries - since.retries, dead = c.dead - since.dead }
end

local function copy_counts(d)
  local c = d.counts
  return { delivered = c.delivered, duplicates = c.duplicates, retries = c.retries, dead = c.dead }
end

--- outbox:step() -> busy, delay: one non-blocking round of delivery, for a host's own loop.
-- busy: calls and jobs in flight; delay: seconds until step() has something to do if neither
-- outbox:fd() nor the client's fd() becomes readable first.
function Outbox:step()
  if not COB[self] then bad_self(self, "step") end
  local d = deliverer(self, "step")
  d:step()
  local busy = d.n + (d.claim and 1 or 0)
  local delay = busy > 0 and 0 or math.max(0, d.next_claim - core.now())
  return busy, delay
end

-- Block (plain Lua) until the next thing the deliverer waits for, for at most `limit` s: a
-- call (the client's poll delivers it), or a job.
local function block(d, limit)
  local what, h, t = d:next_wait()
  if not what then return end
  if limit and (not t or limit < t) then t = limit end
  if t and t <= 0 then return end
  if what == "calls" then d.poll(t or 1) else h:wait(t) end
end

-- Deliver until `done(d)` or `seconds` pass (nil: no limit); then stop claiming and let what
-- is in flight finish. Returns the outcome counts of this run.
local function deliver_until(self, d, seconds, done)
  local since = copy_counts(d)
  local deadline = seconds and core.now() + seconds
  d.stopping = false
  while true do
    d:step()
    if done(d) then break end
    local now = core.now()
    if deadline and now >= deadline then break end
    block(d, deadline and deadline - now)
  end
  d:stop()
  while not d:quiet() do -- what is in flight finishes and is recorded
    d:step()
    if not d:quiet() then block(d, nil) end
  end
  if d.watch then d.watch:wait() end
  d.watch = nil
  d.stopping = false
  return counts_since(d, since)
end

local function no_wait_here(method)
  if can_yield() or cannot_wait() then
    misuse.raise("littlehorse: outbox:" .. method .. "() blocks its caller; in nginx use outbox:start() " ..
                 "(delivery in a timer of each worker)")
  end
end

--- outbox:drain([seconds]) -> counts: deliver until nothing is pending (records backing off
-- are waited for) or `seconds` pass. counts: delivered, duplicates, retries, dead, pending.
function Outbox:drain(seconds)
  if not COB[self] then bad_self(self, "drain") end
  no_wait_here("drain")
  if seconds ~= nil and (type(seconds) ~= "number" or not (seconds >= 0)) then
    misuse.bad("drain", 1, "expected a number of seconds >= 0, got " .. tostring(seconds))
  end
  local d = deliverer(self, "drain")
  d.pending = -1
  local c = deliver_until(self, d, seconds, d.empty)
  local st = self:stats()
  c.pending = st and st.pending or nil
  return c
end

--- outbox:run([seconds]) -> counts: deliver as records come due, for `seconds` (nil: until
-- the process ends).
function Outbox:run(seconds)
  if not COB[self] then bad_self(self, "run") end
  no_wait_here("run")
  if seconds ~= nil and (type(seconds) ~= "number" or not (seconds >= 0)) then
    misuse.bad("run", 1, "expected a number of seconds >= 0, got " .. tostring(seconds))
  end
  return deliver_until(self, deliverer(self, "run"), seconds, function() return false end)
end

---------------------------------------------------------------------------------------------
-- nginx: delivery in a timer of each worker

local function log_once(self, level, ...)
  local ngx = ngx_api()
  local msg = table.concat({ ... })
  if self._last_log ~= msg then ngx.log(level, msg) end
  self._last_log = msg
end

-- Calls one step of the timer starts. Starting a call costs 20-60 us of the worker's time on
-- the development VM, consuming a claim (4 x batch records) and the completions of a batch
-- up to about 1 ms each: so that no event-loop turn holds the worker's other requests (a
-- /health probe) for more than a millisecond or two, the timer does one bounded step per turn.
local START_CHUNK = 16

-- The timer: step, then wait on the wake socket for the next thing (a call, a job, the watch
-- job that ends when posts are stored or when the next claim is due). After a step that did
-- something, the next one waits for a later turn of the event loop (ngx.sleep: what it would
-- wait for is often done already, e.g. calls that fail at once while the server is down, and
-- steps chained in one turn would add up). A worker that exits stops claiming and finishes
-- what is in flight, so nothing it claimed waits for its lease.
local function timer_loop(premature, self)
  local ngx = ngx_api()
  if premature or not COB[self] or COB[self]:is_closed() then return end
  local d = self._deliverer
  local ok, err, code = self:ready()
  if not ok then
    log_once(self, ngx.ERR, "littlehorse: outbox ", tostring(COB[self]:path()), " cannot deliver: ", tostring(err))
    if not ngx.worker.exiting() then ngx.timer.at(self._cfg.poll_interval * 10, timer_loop, self) end
    return
  end
  local run_ok, failure = pcall(function()
    while COB[self] and not COB[self]:is_closed() do
      if ngx.worker.exiting() and not d.stopping then d:stop() end
      local moved = d:step(START_CHUNK)
      if d.stopping and d:quiet() then break end
      if d.last_error then
        log_once(self, ngx.ERR, "littlehorse: outbox ", tostring(COB[self]:path()), ": ", tostring(d.last_error))
        d.last_error = nil
      end
      local what, h, t = d:next_wait()
      if moved or d:can_start() then ngx.sleep(0.001) -- (ngx.sleep(0) logs a warning on stock nginx)
      elseif what == "calls" then resty._await_done(h, t)
      elseif what and not h:done() then resty._await_done(h, self._cfg.job_limit) end
    end
  end)
  if not run_ok then
    ngx.log(ngx.ERR, "littlehorse: outbox delivery failed: ", tostring(failure), "; restarting it in 1 s")
    if not ngx.worker.exiting() then ngx.timer.at(1, timer_loop, self) end
  end
  self._timer_running = false
end

--- outbox:start() -> true: nginx only (init_worker_by_lua): deliver in a timer of this worker.
function Outbox:start()
  if not COB[self] then bad_self(self, "start") end
  local ngx = ngx_api()
  if type(ngx) ~= "table" or not ngx.timer then
    misuse.raise("littlehorse: outbox:start() is for nginx; elsewhere use outbox:run(), drain() or step()")
  end
  local d = deliverer(self, "start")
  if self._timer_running then return true end
  -- the calls' wake-ups come from the client's completion thread (fd() starts it)
  if resty.strategy == "wake" then self._client:fd() end
  d.stopping = false
  local ok, err = ngx.timer.at(0, timer_loop, self)
  if not ok then return nil, err end
  self._timer_running = true
  return true
end

---------------------------------------------------------------------------------------------
-- The file: stats, records, dead letters

--- outbox:stats() -> table | nil, err, code
function Outbox:stats()
  local cob = COB[self] or bad_self(self, "stats")
  local st, err, code = wait_job(self._cfg, cob:stats_async())
  if not st then return nil, err, code end
  local d = self._deliverer
  st.in_flight = d and d.n or 0
  st.queued_lost = self._queued_lost
  return st
end

local LIST_OPTIONS = misuse.names { "after", "limit", "requests" }

local function list(self, method, state, opts)
  local cob = COB[self] or bad_self(self, method)
  if opts ~= nil then
    if type(opts) ~= "table" then misuse.bad(method, 1, "table of options expected, got " .. type(opts)) end
    misuse.check_keys(opts, LIST_OPTIONS, method, 1, "option")
  end
  local ok, job = pcall(cob.list_async, cob, state, opts)
  if not ok then -- the C side's misuse error names list_async's argument 2: it is ours 1
    error((tostring(job):gsub("bad argument #2 to 'list_async'", "bad argument #1 to '" .. method .. "'")), 0)
  end
  return wait_job(self._cfg, job)
end

--- outbox:dead_letters([{ after =, limit =, requests = }]) -> records | nil, err, code
function Outbox:dead_letters(opts) return list(self, "dead_letters", "dead", opts) end

--- outbox:pending([{ after =, limit =, requests = }]) -> records | nil, err, code
function Outbox:pending(opts) return list(self, "pending", "pending", opts) end

local function is_id(v)
  return type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2 ^ 53
end

local function ids_arg(method, ids)
  if ids == "all" then return ids end
  if type(ids) ~= "table" then misuse.bad(method, 1, "expected a list of record ids, or \"all\", got " .. type(ids)) end
  for i, id in ipairs(ids) do
    if not is_id(id) then
      misuse.bad(method, 1, string.format("[%d]: expected a record id (an integer >= 1), got %s", i, tostring(id)))
    end
  end
  return ids
end

--- outbox:requeue(ids | "all") -> count | nil, err, code: dead letters back to pending.
function Outbox:requeue(ids)
  local cob = COB[self] or bad_self(self, "requeue")
  return wait_job(self._cfg, cob:requeue_async(ids_arg("requeue", ids)))
end

--- outbox:purge(ids | "all") -> count | nil, err, code: dead letters deleted.
function Outbox:purge(ids)
  local cob = COB[self] or bad_self(self, "purge")
  return wait_job(self._cfg, cob:purge_async(ids_arg("purge", ids)))
end

---------------------------------------------------------------------------------------------

--- outbox:fd() -> an eventfd, readable while finished outbox jobs wait (for host loops, with
-- the client's fd()).
function Outbox:fd() return (COB[self] or bad_self(self, "fd")):fd() end
function Outbox:path() return (COB[self] or bad_self(self, "path")):path() end
function Outbox:is_closed() return (COB[self] or bad_self(self, "is_closed")):is_closed() end

--- outbox:close(): idempotent; stops delivery (calls in flight are left to finish: their
-- records come back after their lease), commits what was queued, closes the file.
function Outbox:close()
  local cob = COB[self] or bad_self(self, "close")
  local d = self._deliverer
  if d then d:stop() end
  return cob:close()
end

Outbox_mt.__tostring = function(self) return tostring(COB[self]) end
Outbox_mt.__close = function(self) return Outbox.close(self) end

return { new = new, Outbox = Outbox }
