-- OpenResty / nginx: calls that never block the worker's event loop.
--
-- Where a call is made decides how it waits (M._mode):
-- * phases that can yield (rewrite, access, content, timers, ...): the call is started async
--   and the request's coroutine waits on an ngx.semaphore of its own. One reader per worker,
--   a timer holding one connection to this module's wake channel (wake.h), is sent a byte
--   when calls complete; it takes their ids and posts the semaphores of whoever waits for
--   them (a table keyed by id: O(1) to register). So no connection per waiting call, no
--   polling, no thread or Lua VM per call, and every waiting request holds a timer (the
--   semaphore's), which keeps an exiting worker (HUP, QUIT) alive until it is answered.
--   If the wake channel cannot be used, the wait falls back to an ngx.sleep poll (about 1 ms
--   of added latency per call), and says so once in the error log.
-- * phases that cannot yield (log, set, header and body filters, init_worker, ...): the
--   client's write methods start their call at once and hand its wait (and any retries) to a
--   zero-delay ngx.timer, and reads raise (littlehorse.client; docs/openresty.md);
-- * exit_worker, and outside nginx: the blocking C call.
--
-- Rules (see docs/openresty.md): never make clients in init_by_lua (the master: gRPC must not
-- be initialised before nginx forks); make them in init_worker_by_lua or lazily in handlers;
-- call require("littlehorse.resty").shutdown() from exit_worker_by_lua.
--
-- Internal API for the rest of the library (and the outbox), not for users:
--   _mode() -> nil | "yield" | "defer";  _can_yield();  _in_master()
--   _await(job, limit) -> job:wait(0)'s results, waiting at most `limit` seconds (then
--       job:cancel() and up to 5 s more). `job` is anything with id() (a process-unique id
--       from lh_async_new_id(), or nil once settled), done(), wait(0) and cancel(), whose
--       completion is announced with lh_wake_post(id) (wake.h) after done() turns true: call
--       handles and HTTP jobs are; an outbox job can be.
--   _call(c, start, req, opts): start(c, req, opts) (a C *_async method) and _await it.
--   _defer(what, fn) -> true | nil, err: fn() in a zero-delay timer; an error it raises is
--       logged at [error], naming `what`.
--   _flight(): a result some coroutines of this worker wait for while one computes it.
--   _http_post(url, body, opts): core._http_post on a thread, awaited as above.
local core = require "littlehorse.core"

local type, rawget, pairs, pcall, tostring = type, rawget, pairs, pcall, tostring

-- Public: strategy, wake_dir, shutdown().
local M = {
  strategy = "wake",   -- "wake" (the worker's wake channel) or "sleep" (ngx.sleep polling)
  wake_dir = nil,      -- default: ($TMPDIR or /tmp) .. "/littlehorse-wake-<euid>" (see start_reader)
}

local YIELDABLE = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
  ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}
-- Phases where a call may block: the master (no clients there anyway) and a worker's exit
-- (its event loop has ended: a timer would never run).
local BLOCKING = { init = true, exit_worker = true }

local function ngx_api() return rawget(_G, "ngx") end

local function phase()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or ngx.get_phase == nil then return nil end
  return ngx.get_phase()
end
M._phase = phase

--- nil outside nginx and where a call may block; "yield" in phases that can yield; "defer"
-- in the others (the call must not wait there).
function M._mode()
  local ph = phase()
  if ph == nil or BLOCKING[ph] then return nil end
  return YIELDABLE[ph] and "yield" or "defer"
end

--- True inside an nginx phase where cosockets and ngx.sleep work.
function M._can_yield()
  local ph = phase()
  return ph ~= nil and YIELDABLE[ph] == true
end

--- True in nginx's init phase (init_by_lua, the master process): no gRPC there.
function M._in_master()
  return phase() == "init"
end

local clients = setmetatable({}, { __mode = "k" }) -- this worker's clients, for shutdown()

function M._track(client)
  if ngx_api() then clients[client] = true end
  return client
end

---------------------------------------------------------------------------------------------
-- The reader: one timer per worker, reading the wake channel, posting waiters' semaphores.

local semaphore            -- ngx.semaphore, loaded on first use
local waiters = {}         -- id -> the semaphore of the coroutine waiting for that job
local nwaiting = 0
local READY_BATCH = 256    -- core._wake_ready's most ids per call
local ready = {}           -- core._wake_ready's buffer
local reader = "stopped"   -- "stopped" | "starting" (its timer is pending) | "running"
local wake_failed          -- the wake directory or socket cannot be used: poll instead
local watching             -- the exit watch timer is pending
-- The reader's read timeout: never reached in practice (a timeout would log an [error] line).
local READ_TIMEOUT_MS = 7 * 24 * 3600 * 1000
local WATCH_S = 24 * 3600

-- Every waiter looks at its own job again (the reader is gone, or ids were lost).
local function wake_all()
  for id, s in pairs(waiters) do
    waiters[id] = nil
    nwaiting = nwaiting - 1
    s:post(1)
  end
end

-- Most waiters woken in one turn of the event loop. Each woken request finishes its handler
-- in that turn (decoding, its response), so a burst (say 200 calls answered at once) would
-- otherwise hold the loop for all of them, and every other request (a /health probe) waits
-- that long: past this many, the reader lets the loop run for a turn (ngx.sleep, 1 ms at
-- most) before it wakes the next ones.
local WAKE_CHUNK = 16

local function dispatch()
  local posted = 0
  repeat
    local n, lost = core._wake_ready(ready)
    for i = 1, n do
      local id = ready[i]
      local s = waiters[id]
      if s then
        if posted == WAKE_CHUNK then
          ngx.sleep(0.001) -- ngx.sleep(0) would log a warning on stock nginx
          posted = 0
          s = waiters[id] -- it may have timed out and left meanwhile
        end
        if s then
          waiters[id] = nil
          nwaiting = nwaiting - 1
          posted = posted + 1
          s:post(1)
        end
      end
    end
    if lost then wake_all() end
  until n < READY_BATCH
end

local function read_wakeups(premature, path)
  local ngx = ngx
  local sock = ngx.socket.tcp()
  local ok, err = sock:connect("unix:" .. path)
  if ok then ok, err = core._wake_attach() end
  if not ok then
    sock:close()
    core._wake_stop()
    reader, wake_failed = "stopped", true
    ngx.log(ngx.WARN, "littlehorse: wake channel unavailable (", tostring(err), "); waiting with ngx.sleep instead")
    return wake_all()
  end
  reader = "running"
  sock:settimeout(READ_TIMEOUT_MS)
  while true do
    local byte, rerr = sock:receive(1)
    if not byte and rerr ~= "timeout" then
      ngx.log(ngx.WARN, "littlehorse: the wake channel closed (", tostring(rerr), "); reconnecting on the next wait")
      break
    end
    dispatch()
    -- An exiting worker (HUP, QUIT) waits for this timer: end once nobody waits. The watch
    -- timer (or the last waiter to leave) sends a byte when the worker starts exiting.
    if nwaiting == 0 and ngx.worker.exiting() then break end
  end
  sock:close()
  reader = "stopped"
  wake_all()
end

-- Pending until the worker exits, when nginx runs it early (premature): then the reader is
-- sent a byte, to end if nobody waits.
local function watch_exit(premature)
  watching = false
  if premature then return core._wake_kick() end
  local ngx = ngx
  watching = ngx.timer.at(WATCH_S, watch_exit) and true
end

-- The reader runs, or is about to: true. False when waits must poll instead.
local function start_reader()
  if reader ~= "stopped" then return true end
  if wake_failed then return false end
  local ngx = ngx_api()
  if not semaphore then
    local ok, sem = pcall(require, "ngx.semaphore")
    if not ok then
      wake_failed = true
      ngx.log(ngx.WARN, "littlehorse: ngx.semaphore unavailable (", tostring(sem), "); waiting with ngx.sleep instead")
      return false
    end
    semaphore = sem
  end
  -- The wake directory must be private to the worker's user (the C side checks with lstat:
  -- a real directory, owned by that user, writable by nobody else, under parents only root
  -- or that user can change) and is made 0700 when missing. The default is per user under
  -- $TMPDIR (or /tmp), which any worker user can create; nginx's prefix is usually root's and
  -- not writable by the worker user. A directory that fails the check is refused, never
  -- used: someone else could have us talk to their socket or unlink their files.
  local path, err, kind = core._wake_start(M.wake_dir)
  if not path then
    wake_failed = true
    if kind == "unsafe" then
      ngx.log(ngx.ERR, "littlehorse: refusing the wake directory: ", err, ". Fix: remove it, or set ",
              "require(\"littlehorse.resty\").wake_dir in init_worker_by_lua to a directory that only ",
              "the worker's user owns and can write; until then calls wait with ngx.sleep polling")
    else
      ngx.log(ngx.WARN, "littlehorse: wake socket unavailable (", err, "); waiting with ngx.sleep instead")
    end
    return false
  end
  local ok, terr = ngx.timer.at(0, read_wakeups, path)
  if not ok then
    core._wake_stop()
    ngx.log(ngx.WARN, "littlehorse: cannot start the wake reader (", terr, "); this wait polls with ngx.sleep")
    return false
  end
  reader = "starting"
  if not watching then watching = ngx.timer.at(WATCH_S, watch_exit) and true end
  return true
end

local pool, npool = {}, 0 -- semaphores ready for reuse (count 0)

local function unregister(id, s)
  if waiters[id] == s then
    waiters[id] = nil
    nwaiting = nwaiting - 1
    if nwaiting == 0 and ngx.worker.exiting() then core._wake_kick() end -- the reader may end
  end
  if npool < 64 and s:count() == 0 then
    npool = npool + 1
    pool[npool] = s
  end
end

-- Wait for job through the reader until `deadline` (ngx.now() time): true (done), false (timed
-- out) or nil (no reader: the caller polls instead).
local function wake_wait(job, deadline)
  local id = job:id()
  if id == nil then return true end
  local ngx = ngx
  while true do
    if not start_reader() then return nil end
    local s
    if npool > 0 then
      s, pool[npool] = pool[npool], nil
      npool = npool - 1
    else
      s = semaphore.new(0)
    end
    -- registered before looking at done(): a completion after this point reaches the reader
    if not waiters[id] then nwaiting = nwaiting + 1 end
    waiters[id] = s
    if job:done() then
      unregister(id, s)
      return true
    end
    local left = deadline - ngx.now()
    local posted = left > 0 and s:wait(left)
    unregister(id, s)
    if job:done() then return true end
    if not posted then return false end
    -- posted, not done: the reader stopped, or ids were lost; wait again (or poll)
  end
end

local function sleep_until(job, deadline)
  local ngx = ngx
  local delay = 0.001
  while not job:done() do
    if ngx.now() > deadline then return false end
    ngx.sleep(delay)
    if delay < 0.004 then delay = delay * 2 end
  end
  return true
end

--- Wait until a job (an async call handle or an outbox job) is done, without blocking the
-- worker and without taking its results (an on_done callback still gets them in poll()).
function M._await_done(job, limit)
  if not job:done() then
    local deadline = ngx.now() + limit
    local done
    if M.strategy == "wake" then done = wake_wait(job, deadline) end
    if done == nil then done = sleep_until(job, deadline) end
    if not done then
      -- The job outlived its own deadline by `limit`: cancel and collect it.
      job:cancel()
      sleep_until(job, ngx.now() + 5)
    end
  end
end

--- Wait for a job without blocking the worker; returns job:wait(0)'s results (see the top).
function M._await(job, limit)
  M._await_done(job, limit)
  return job:wait(0)
end

-- C clients whose completion thread runs (started without the eventfd, which nobody here reads;
-- wake-ups come from the thread, through the wake channel).
local threaded = setmetatable({}, { __mode = "k" })

--- Start `start(c, req, opts)` (a C *_async method) and await it.
function M._call(c, start, req, opts)
  if not threaded[c] and M.strategy == "wake" and start_reader() then
    c:_completion_thread()
    threaded[c] = true
  end
  local handle, err, code = start(c, req, opts)
  if not handle then return nil, err, code end -- refused before sending (size, no token)
  local timeout = (type(opts) == "table" and rawget(opts, "timeout")) or c:timeout()
  return M._await(handle, timeout + 1) -- gRPC's deadline fires first and reports itself
end

--- fn() in a zero-delay timer (where it can yield); an error it raises is logged, naming what.
function M._defer(what, fn)
  local ngx = ngx
  return ngx.timer.at(0, function()
    local ok, err = pcall(fn)
    if not ok then ngx.log(ngx.ERR, "littlehorse: ", what, " (in a timer) raised: ", tostring(err)) end
  end)
end

local Flight = {}
Flight.__index = Flight

--- A result that one coroutine computes and others wait for: f:wait(limit) -> the values given
-- to f:finish(a, b) | nil, err (timed out).
function M._flight()
  if not semaphore then semaphore = require "ngx.semaphore" end
  return setmetatable({ n = 0, sema = semaphore.new(0) }, Flight)
end

function Flight:wait(limit)
  self.n = self.n + 1
  local ok = self.sema:wait(limit)
  if not ok and not self.finished then return nil, "timed out after " .. limit .. " s waiting for it" end
  return self.a, self.b
end

function Flight:finish(a, b)
  self.a, self.b, self.finished = a, b, true
  if self.n > 0 then self.sema:post(self.n) end
end

--- core._http_post's request on a thread of its own, awaited without blocking the worker.
function M._http_post(url, body, opts)
  local job, err = core._http_post_async(url, body, opts)
  if not job then return nil, err end
  local timeout = type(opts) == "table" and opts.timeout or 10
  local status, reply = M._await(job, timeout + 1)
  job:close()
  return status, reply
end

--- For exit_worker_by_lua: close this worker's clients (cancelling calls in flight), close the
-- wake channel and remove its socket file if still there.
function M.shutdown()
  for client in pairs(clients) do client:close() end
  core._wake_stop()
  wake_failed = nil
end

return M
