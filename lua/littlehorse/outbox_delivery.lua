-- littlehorse.outbox_delivery: the delivery loop of an outbox (docs/outbox.md). Not API: use
-- it through an outbox's step(), drain(), run() and start().
--
-- One deliverer per outbox object. Each step does what can be done without blocking, on the
-- outbox's writer thread (claim jobs) and the client's async engine (calls):
--   1. finished calls come to their on_done callbacks (the client's poll): an outcome per
--      record, buffered;
--   2. claimed records wait in a ready queue; calls are started from it so that `batch` calls
--      are in flight whenever records are due (one call per record, sending the stored
--      request bytes: client:put_external_event_packed_async with their guid, or
--      put_correlated_event_packed_async with their key; reply = false);
--   3. a claim job when the ready queue runs low and records may be due: it carries the
--      buffered outcomes, so one transaction records them and leases the next records;
--   4. a watch job, so that posts stored meanwhile (in this process) start a claim at once.
-- Outcomes: success or ALREADY_EXISTS = delivered (the record is deleted, only now); codes
-- that say the record itself is wrong (DEAD) = a dead letter; anything else = retried later
-- with capped, jittered backoff (the server's RetryInfo delay when it sends one). A batch in
-- which every call failed as unreachable also pauses claiming (a down server is not asked
-- again for every record).
local core = require "littlehorse.core"

local M = {}

-- The record is wrong, not the moment: another attempt cannot succeed.
M.DEAD = { INVALID_ARGUMENT = true, NOT_FOUND = true, FAILED_PRECONDITION = true, OUT_OF_RANGE = true,
           UNIMPLEMENTED = true }
-- The server could not be reached or did not answer: pause claiming, not only this record.
local UNREACHABLE = { UNAVAILABLE = true, DEADLINE_EXCEEDED = true }

local D = {}
local D_mt = { __index = D }

-- cfg: batch, timeout, initial_backoff, max_backoff, multiplier, poll_interval (outbox.lua
-- checked them). send(bytes, opts, kind) -> handle | nil, err, code: the client's packed async
-- call for the record's kind ("event" or "correlated");
-- poll(seconds): the client's poll(), which delivers finished calls to their on_done.
function M.new(cob, send, poll, cfg)
  return setmetatable({
    cob = cob, send = send, poll = poll, cfg = cfg,
    inflight = {},            -- handle -> true, for the calls in flight
    free = {},                -- call slots not in use (see slot)
    n = 0,                    -- how many
    ready = {}, first = 1, last = 0, -- claimed records not sent yet: the claim of each,
    at = {},                  -- ready[first..last], and its index in that claim (see claimed)
    acks = {},                -- outcomes not yet sent to the writer
    claim = nil, watch = nil, -- jobs in flight (a claim job also carries outcomes)
    next_claim = 0,           -- core.now() time of the next claim
    finished = false,         -- a record with an order key ended since the last claim (see step)
    pause_until = 0,          -- claiming paused (the server is unreachable) until then
    failed_batches = 0,       -- consecutive batches in which every call was unreachable
    pending = -1,             -- pending records the last claim saw (-1: not known yet)
    counts = { delivered = 0, duplicates = 0, retries = 0, dead = 0 },
    stopping = false,
    last_error = nil,         -- the last failure of a claim job
  }, D_mt)
end

-- Outcome a of record i of claim b goes to the writer, with the next claim; a record of a block
-- (several records stored in one row) waits for the block's other records: a block whose
-- records were all delivered is acknowledged whole, in one outcome (the writer removes its row),
-- and otherwise with each record's own outcome (the writer makes the block records of their
-- own first).
local function add_ack(self, b, i, a)
  local bid = b.block[i]
  if not bid then
    self.acks[#self.acks + 1] = a
    return
  end
  local t = b.blocks[bid]
  t.left = t.left - 1
  t.acks[#t.acks + 1] = a
  if type(a) == "table" then
    if a.outcome == "duplicate" then t.duplicates = t.duplicates + 1 else t.failed = true end
  end
  if t.left > 0 then return end
  local acks = self.acks
  if not t.failed then
    acks[#acks + 1] = { id = bid, outcome = "block", count = t.count, duplicates = t.duplicates }
  else
    for k = 1, #t.acks do acks[#acks + 1] = t.acks[k] end
  end
  b.blocks[bid] = nil
end

local function backoff(cfg, attempt)
  local cap = math.min(cfg.max_backoff, cfg.initial_backoff * cfg.multiplier ^ (attempt - 1))
  return cap * math.random()
end

-- The call of record i of claim b finished with ok | nil, err, code. A claim is also the batch
-- of its records: b.left = outcomes to come, b.ok = any answer that showed the server was there.
function D:finish(b, i, ok, err, code)
  local id = b.id[i]
  local a
  if ok then
    a = id -- the writer reads a bare id as { id =, outcome = "delivered" }
    b.ok = true
  elseif code == "ALREADY_EXISTS" then
    a = { id = id, outcome = "duplicate" }
    b.ok = true
  elseif M.DEAD[code] or (code == "RESOURCE_EXHAUSTED" and err and err.sent == false) then
    -- (RESOURCE_EXHAUSTED before sending: larger than the client's max_send_size)
    a = { id = id, outcome = "dead", code = code, message = err and err.message or nil }
    b.ok = true
  else
    local delay = err and err.retry_delay or backoff(self.cfg, b.attempts[i] + 1)
    a = { id = id, outcome = "retry", delay = delay, code = code or "UNKNOWN",
          message = err and err.message or nil }
    if not UNREACHABLE[code] then b.ok = true end
  end
  add_ack(self, b, i, a)
  if b.ordered[i] and (a == id or a.outcome ~= "retry") then self.finished = true end
  b.left = b.left - 1
  if b.left == 0 then
    -- every record of the batch answered: was the server there at all?
    if b.ok then
      self.failed_batches = 0
      self.pause_until = 0
    else
      self.failed_batches = self.failed_batches + 1
      self.pause_until = core.now() + backoff(self.cfg, self.failed_batches)
      self.next_claim = math.max(self.next_claim, self.pause_until)
    end
  end
end

-- A call slot: the options of one call in flight, with its on_done, made once and used again
-- for call after call (the client reads the options when a call starts), so that sending a
-- record allocates no table or closure of its own.
local function slot(self)
  local free = self.free
  local s = free[#free]
  if s then
    free[#free] = nil
    return s
  end
  s = {}
  s.opts = { reply = false, timeout = self.cfg.timeout, on_done = function(ok, err, code)
    local b, i = s.b, s.i
    self.inflight[s.h] = nil
    s.b, s.i, s.h = nil, nil, nil
    free[#free + 1] = s
    self.n = self.n - 1
    self:finish(b, i, ok, err, code)
  end }
  return s
end

-- Start calls from the ready queue while fewer than `batch` are in flight, at most `limit`
-- of them. The outcome of each comes to its on_done callback, in poll().
local function start_calls(self, limit)
  local ready, at, inflight, cfg = self.ready, self.at, self.inflight, self.cfg
  local i, last = self.first, self.last
  local stop = i + limit -- (limit may be math.huge)
  while i <= last and self.n < cfg.batch and i < stop do
    local b, k = ready[i], at[i]
    ready[i], at[i] = nil, nil
    i = i + 1
    local s = slot(self)
    local h, err, code = self.send(b.request[k], s.opts, b.kind[k])
    if h then
      s.b, s.i, s.h = b, k, h
      inflight[h] = true
      self.n = self.n + 1
    else
      self.free[#self.free + 1] = s
      self:finish(b, k, nil, err, code) -- refused before sending (no token, too large)
    end
  end
  if i > last then self.first, self.last = 1, 0 else self.first = i end
end

local function ready_count(self) return self.last - self.first + 1 end

local function add_counts(counts, c)
  counts.delivered = counts.delivered + c.delivered
  counts.duplicates = counts.duplicates + c.duplicates
  counts.retries = counts.retries + c.retries
  counts.dead = counts.dead + c.dead
end

-- A finished claim (its records by column, see claim_async): its records join the ready
-- queue, and the claim becomes their batch.
local function claimed(self, rows, now)
  local cfg = self.cfg
  if rows.acked then add_counts(self.counts, rows.acked) end
  self.pending = rows.pending
  local k = rows.n
  if k > 0 then
    rows.left, rows.ok = k, false
    local block = rows.block
    if next(block) then -- the outcomes each block waits for (see add_ack)
      local blocks = {}
      for i = 1, k do
        local bid = block[i]
        if bid then
          local t = blocks[bid]
          if not t then
            t = { count = 0, left = 0, duplicates = 0, failed = false, acks = {} }
            blocks[bid] = t
          end
          t.count, t.left = t.count + 1, t.left + 1
        end
      end
      rows.blocks = blocks
    end
    local ready, at, last = self.ready, self.at, self.last
    for i = 1, k do
      ready[last + i], at[last + i] = rows, i
    end
    self.last = last + k
  end
  if self.claim_size > 0 and k < self.claim_size then
    -- nothing more is due now: the next claim when the next record is due (records of
    -- other processes' posts, and leases that end, show up within poll_interval)
    local wait = rows.next_due and math.min(rows.next_due, cfg.poll_interval) or cfg.poll_interval
    self.next_claim = math.max(now + math.max(wait, 0.001), self.pause_until)
  end
end

-- Do what can be done now, starting at most `limit` calls (default: as many as the window
-- allows). Returns true when something happened.
function D:step(limit)
  local now = core.now()
  local cfg, cob = self.cfg, self.cob
  local moved = false
  cob:poll(0) -- on_done callbacks of jobs (posts queued where nothing could wait for them)
  local claim = self.claim
  if claim and claim:done() then
    self.claim, moved = nil, true
    local rows, err = claim:wait(0)
    if rows then
      claimed(self, rows, now)
    else
      -- the outcomes it carried were not recorded: those records stay leased until their
      -- lease ends, then are sent again (the server answers ALREADY_EXISTS for delivered ones)
      self.last_error = err
      self.next_claim = now + cfg.poll_interval
      self.finished = false -- no early claim either: the file failed, wait poll_interval
    end
  end
  local before = self.n
  if before > 0 then self.poll(0) end -- finished calls, to their on_done (finish)
  if self.n ~= before then moved = true end
  if self.stopping then
    -- records claimed but not sent: their leases end now (not counted as attempts)
    local ready, at = self.ready, self.at
    for i = self.first, self.last do
      local b, k = ready[i], at[i]
      add_ack(self, b, k, { id = b.id[k], outcome = "release" })
      ready[i], at[i] = nil, nil
    end
    self.first, self.last = 1, 0
  else
    start_calls(self, limit or math.huge)
  end
  local watch = self.watch
  if watch and watch:done() then
    self.watch = nil
    if watch:wait(0) then -- posts were stored: claim now (unless the server is unreachable)
      self.next_claim = math.max(now, self.pause_until)
    end
  end
  if not self.claim then
    -- one job both records outcomes and claims: a claim while fewer than 3 x batch records
    -- are in flight or ready, up to 4 x batch, so the window stays full while a claim takes a
    -- few milliseconds (the writer thread also commits posts and outcomes); outcomes alone
    -- when many wait, or nothing else is in flight. A record with an order key that ends
    -- (delivered, duplicate, dead) makes the next record of its WfRun due: a claim goes with
    -- its outcome even before next_claim (that record was not due later: it waited for this).
    local acks, n, queued = self.acks, self.n, ready_count(self)
    local want = not self.stopping and n + queued <= cfg.batch * 3
      and (now >= self.next_claim or (self.finished and now >= self.pause_until))
    if want or #acks >= cfg.batch or (#acks > 0 and (n == 0 or self.stopping)) then
      self.claim_size = want and 4 * cfg.batch - n - queued or 0
      self.claim = cob:claim_async(self.claim_size, #acks > 0 and acks or nil)
      if #acks > 0 then self.acks = {} end
      if want then self.finished = false end
      moved = true
    end
  end
  if not self.claim and not self.watch and not self.stopping then
    self.watch = cob:watch_async(math.max(0.001, math.min(self.next_claim - now, cfg.poll_interval)))
  end
  return moved
end

-- Claimed records wait to be sent and the window has room: the next step starts calls.
function D:can_start()
  return not self.stopping and self.n < self.cfg.batch and ready_count(self) > 0
end

-- Nothing in flight or buffered (calls, claimed records, outcomes, claim).
function D:quiet()
  return not self.claim and self.n == 0 and #self.acks == 0 and ready_count(self) == 0
end

-- Nothing left to deliver: quiet, and the last claim saw no pending record at all.
function D:empty()
  return self:quiet() and self.pending == 0
end

-- What to wait for next, for a loop that blocks: "calls" (any call in flight: the client's
-- poll waits for one, or in nginx the wake socket for the one returned), a job handle (the
-- claim), or the watch job (new posts) until the next claim; with how long it may take.
function D:next_wait()
  if self.n > 0 then return "calls", next(self.inflight), self.cfg.timeout + 1 end
  if self.claim then return "job", self.claim, nil end
  if self.watch then return "job", self.watch, nil end
end

-- Stop claiming and sending; what is in flight still finishes (a worker that exits, the end of
-- drain() or run()). Claimed records not sent are released by the next step.
function D:stop()
  self.stopping = true
  if self.watch then self.watch:cancel() end
end

return M
