-- OpenResty / nginx: calls that never block the worker's event loop.
--
-- Inside an nginx phase that can yield (rewrite, access, content, timers, ...), the
-- `littlehorse` client methods route here automatically: the call is started async, and the
-- request's coroutine waits on a cosocket connected to this worker's wake socket (wake.h),
-- which the C completion thread answers when the call completes. Fully event-driven: no
-- polling, no thread per call, no Lua VM per call, and a pending call keeps nginx from
-- dropping the request on reload (the cosocket is a real connection nginx waits for).
-- If the wake socket cannot be used, the wait falls back to an ngx.sleep poll (about 1 ms
-- of added latency per call), and says so once in the error log.
--
-- Rules (see docs/openresty.md): never make clients in init_by_lua (the master: gRPC must not
-- be initialised before nginx forks); make them in init_worker_by_lua or lazily in handlers;
-- call require("littlehorse.resty").shutdown() from exit_worker_by_lua.
local core = require "littlehorse.core"

-- Public: strategy, wake_dir, pool_size, shutdown(). The functions with a leading underscore
-- are for the littlehorse client and are not API.
local M = {
  strategy = "wake",   -- "wake" (cosocket wake-ups) or "sleep" (ngx.sleep polling)
  wake_dir = nil,      -- default: ($TMPDIR or /tmp) .. "/littlehorse-wake-<euid>" (see wake_socket_path)
  pool_size = 256,     -- kept-alive wake connections per worker
}

local YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
  ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

local function ngx_api() return rawget(_G, "ngx") end

--- True inside an nginx phase where cosockets and ngx.sleep work.
function M._can_yield()
  local ngx = ngx_api()
  return type(ngx) == "table" and ngx.get_phase ~= nil and YIELDABLE[ngx.get_phase()] == true
end

--- True in nginx's init phase (init_by_lua, the master process): no gRPC there.
function M._in_master()
  local ngx = ngx_api()
  return type(ngx) == "table" and ngx.get_phase ~= nil and ngx.get_phase() == "init"
end

local clients = setmetatable({}, { __mode = "k" }) -- this worker's clients, for shutdown()

function M._track(client)
  if ngx_api() then clients[client] = true end
  return client
end

local wake_path, wake_failed

-- The worker's wake socket, started on first use. Its directory must be private to the
-- worker's user (the C side checks with lstat: a real directory, owned by that user, writable
-- by nobody else, under parents only root or that user can change) and is made 0700 when
-- missing. The default is per user under $TMPDIR (or /tmp), which any worker user can
-- create; nginx's prefix is usually root's and not writable by the worker user. A directory
-- that fails the check is refused, never used: someone else could swap the socket or have us
-- unlink their files. Either failure falls back to ngx.sleep polling and says so once.
local function wake_socket_path()
  if wake_path or wake_failed then return wake_path end
  local path, err, kind = core._wake_start(M.wake_dir)
  if path then
    wake_path = path
  else
    wake_failed = true
    local ngx = ngx_api()
    if kind == "unsafe" then
      ngx.log(ngx.ERR, "littlehorse: refusing the wake directory: ", err, ". Fix: remove it, or set ",
              "require(\"littlehorse.resty\").wake_dir in init_worker_by_lua to a directory that only ",
              "the worker's user owns and can write; until then calls wait with ngx.sleep polling")
    else
      ngx.log(ngx.WARN, "littlehorse: wake socket unavailable (", err, "); waiting with ngx.sleep instead")
    end
  end
  return wake_path
end

local function sleep_until_done(handle, limit)
  local ngx = ngx_api()
  local delay = 0.001
  local deadline = ngx.now() + limit
  while not handle:done() do
    if ngx.now() > deadline then return false end
    ngx.sleep(delay)
    if delay < 0.004 then delay = delay * 2 end
  end
  return true
end

-- Wait on the wake socket until the call completes. Returns true when it did.
local function wake_wait(handle, path, limit)
  local ngx = ngx_api()
  local id = handle:id()
  if not id then return true end
  local sock = ngx.socket.tcp()
  sock:settimeout(limit * 1000)
  local ok = sock:connect("unix:" .. path)
  if not ok then return false end
  local want = string.format("%.0f", id)
  ok = sock:send(want .. "\n")
  local line = ok and sock:receive("*l")
  if line == want then
    sock:setkeepalive(60000, M.pool_size)
    return true
  end
  sock:close()
  return handle:done()
end

--- Wait for an async call handle without blocking the worker; returns its results.
function M._await(handle, limit)
  if not handle:done() then
    local path = M.strategy == "wake" and wake_socket_path()
    local done = path and wake_wait(handle, path, limit)
    if not done and not sleep_until_done(handle, limit) then
      -- The call outlived its own deadline by `limit`: cancel and collect it.
      handle:cancel()
      sleep_until_done(handle, 5)
    end
  end
  return handle:wait(0)
end

--- Start `start(client, req, opts)` (an *_async method) and await it.
function M._call(client, start, req, opts)
  -- wake-ups come from the client's completion thread, which fd() starts (idempotent)
  if M.strategy == "wake" and wake_socket_path() then client:fd() end
  local handle, err, code = start(client, req, opts)
  if not handle then return nil, err, code end -- refused before sending (size, no token)
  local timeout = (type(opts) == "table" and opts.timeout) or client:timeout()
  return M._await(handle, timeout + 1) -- gRPC's deadline fires first and reports itself
end

--- For exit_worker_by_lua: close this worker's clients (cancelling calls in flight), stop the
-- wake thread and remove its socket file.
function M.shutdown()
  for client in pairs(clients) do client:close() end
  core._wake_stop()
  wake_path, wake_failed = nil, nil
end

return M
