-- littlehorse.bulk: lh-put-event's bulk mode (docs/cli.md, "Many events from a file"). Not
-- API. Needs Lua 5.3+ (littlehorse.sha256), as the command does.
--
-- Posts one event or CorrelatedEvent per JSON line of the input, with up to `concurrency`
-- calls in flight through the client's async engine. Each line is retried on its own (same
-- guid or key on every attempt, so a retry never stores twice), and ends as one of: stored,
-- duplicate (stored before: by an earlier run or an attempt whose reply was lost), bad (not a
-- valid line: nothing sent), rejected (the server refused it), undelivered (no answer after
-- the retries) or failed (any other error). Lines that did not end stored or duplicate are
-- written, as read, to the failed file, which can be fed back in: a line keeps its guid.
local core = require "littlehorse.core"
local sha256 = require "littlehorse.sha256"
local values = require "littlehorse.values"

local M = {}

-- A line without a guid gets the first 128 bits of SHA-256 over this prefix and the line.
M.GUID_PREFIX = "lh-put-event guid v1\n"

function M.derived_guid(line)
  return sha256.hex(M.GUID_PREFIX .. line):sub(1, 32)
end

local RETRYABLE = { UNAVAILABLE = true, DEADLINE_EXCEEDED = true, ABORTED = true, RESOURCE_EXHAUSTED = true }
local REJECTED = { INVALID_ARGUMENT = true, PERMISSION_DENIED = true, UNAUTHENTICATED = true, NOT_FOUND = true,
                   FAILED_PRECONDITION = true, OUT_OF_RANGE = true, UNIMPLEMENTED = true }

local FIELDS = { wf_run_id = true, key = true, event = true, content = true, type = true, value = true, guid = true,
                 thread_run_number = true, node_run_position = true }

local function is_int(v, lo, hi) return math.type(v) == "integer" and v >= lo and v <= hi end

-- One input line -> a job { n, text, kind, req } | nil, why (a bad line).
local function parse(o, n, text)
  local lh = o.lh
  local t, err = lh.json_decode(text)
  if type(t) ~= "table" or getmetatable(t) == lh.array_mt then
    return nil, t == nil and ("not JSON: " .. tostring(err)) or "not a JSON object"
  end
  for k in pairs(t) do
    if not FIELDS[k] then return nil, string.format("unknown field %q", tostring(k)) end
  end
  local event = t.event or o.default_event
  if type(event) ~= "string" or event == "" then return nil, "no event: give \"event\" or --event" end
  local req = { external_event_def_name = event }
  local job = { n = n, text = text, req = req, attempt = 0 }
  if (t.wf_run_id == nil) == (t.key == nil) then return nil, "give one of \"wf_run_id\" (an ExternalEvent) or \"key\" (a CorrelatedEvent)" end
  if t.key ~= nil then
    if type(t.key) ~= "string" then return nil, "key: expected a string" end
    for _, f in ipairs { "guid", "thread_run_number", "node_run_position" } do
      if t[f] ~= nil then return nil, f .. ": a CorrelatedEvent has none (its key is its idempotency key)" end
    end
    job.kind, req.key, job.id = "correlated", t.key, t.key
  else
    local wf = t.wf_run_id
    if type(wf) == "string" then
      local ok, id = pcall(values.parse_wf_run_id, wf)
      if not ok then return nil, "wf_run_id: ids joined with '_', root first, got " .. string.format("%q", wf) end
      wf = id
    elseif type(wf) ~= "table" then
      return nil, "wf_run_id: expected a string"
    end
    if t.guid ~= nil and (type(t.guid) ~= "string" or t.guid == "") then return nil, "guid: expected a non-empty string" end
    local thread, node = t.thread_run_number, t.node_run_position
    if thread ~= nil and not is_int(thread, 0, 2147483647) then return nil, "thread_run_number: expected an integer 0..2147483647" end
    if node ~= nil and not is_int(node, 0, 2147483647) then return nil, "node_run_position: expected an integer 0..2147483647" end
    if node ~= nil and thread == nil then return nil, "node_run_position: needs thread_run_number" end
    job.kind = "event"
    req.wf_run_id, req.guid = wf, t.guid or M.derived_guid(text)
    req.thread_run_number, req.node_run_position = thread, node
    job.id = req.guid
  end
  if t.content ~= nil and (t.type ~= nil or t.value ~= nil) then return nil, "give \"content\" or \"type\" and \"value\", not both" end
  if (t.type == nil) ~= (t.value == nil) then return nil, "\"type\" and \"value\" go together" end
  if t.type ~= nil then
    if type(t.type) ~= "string" or type(t.value) ~= "string" then return nil, "type, value: expected strings (lhctl's <varType> <payload>)" end
    local ok, v = pcall(o.typed_content, t.type, t.value)
    if not ok then return nil, (type(v) == "table" and v.usage) or tostring(v) end
    req.content = v
  elseif t.content ~= lh.null then
    req.content = t.content
  end
  return job
end

-- JSON text of an ordered list of { key, value } (values through the client's codec).
local function ordered_json(lh, fields)
  local parts = {}
  for _, f in ipairs(fields) do
    if f[2] ~= nil then parts[#parts + 1] = lh.json_encode(f[1]) .. ":" .. lh.json_encode(f[2]) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function backoff(p, attempt)
  local cap = math.min(p.max_backoff, p.initial_backoff * p.multiplier ^ (attempt - 1))
  return cap * math.random()
end

--- bulk.run(o) -> the counts. o: client, lh, input (a file handle), total (lines, when known),
-- default_event, typed_content(type, payload) (lhctl's <varType> <payload> -> a value; raises
-- { usage = why }), concurrency, timeout (per attempt), retry = { attempts, initial_backoff,
-- max_backoff, multiplier, deadline }, failed_path, progress ("bar", "lines" or "none"),
-- output ("json" or "quiet"), stdout, stderr, prog (the command's name).
function M.run(o)
  local lh, client = o.lh, o.client
  local counts = { lines = 0, stored = 0, duplicate = 0, bad = 0, rejected = 0, undelivered = 0, failed = 0 }
  local t0 = core.now()
  local failed_file, failed_err = io.open(o.failed_path, "wb")
  if not failed_file then error({ usage = "--failed: " .. tostring(failed_err) }, 0) end
  local active, retries, eof = 0, {}, false
  local bar_shown, last_tick = false, 0
  local done = 0

  local function errors() return done - counts.stored - counts.duplicate end

  local function progress_text()
    local secs = math.max(core.now() - t0, 1e-6)
    local rate = done / secs
    if o.total and o.total > 0 then
      return string.format("%d/%d lines %3d%%  %.0f/s  %d error%s", done, o.total, math.floor(done * 100 / o.total),
                           rate, errors(), errors() == 1 and "" or "s"), done / o.total
    end
    return string.format("%d lines  %.0f/s  %d error%s", done, rate, errors(), errors() == 1 and "" or "s"), nil
  end

  local function draw(force)
    local now = core.now()
    if o.progress == "bar" and (force or now - last_tick >= 0.1) then
      last_tick = now
      local text, frac = progress_text()
      local width = 30
      local fill = frac and math.floor(frac * width + 0.5) or (done % width)
      local bar = frac and (string.rep("#", fill) .. string.rep(".", width - fill))
                       or (string.rep(".", fill) .. "#" .. string.rep(".", width - fill))
      o.stderr:write("\r[", bar, "] ", text, "\27[K")
      o.stderr:flush()
      bar_shown = true
    elseif o.progress == "lines" and (force or now - last_tick >= 1) then
      last_tick = now
      o.stderr:write(o.prog, ": ", (progress_text()), "\n")
    end
  end

  local function say(msg)
    if bar_shown then o.stderr:write("\r\27[K") end
    o.stderr:write(o.prog, ": ", msg, "\n")
  end

  -- The line's end: counted, reported, written to the failed file unless stored.
  local function finish(job, status, err, code)
    done = done + 1
    counts[status] = counts[status] + 1
    if status ~= "stored" and status ~= "duplicate" then
      failed_file:write(job.text, "\n")
      local why = err and (type(err) == "table" and tostring(err) or err) or status
      local attempts = job.attempt > 0 and string.format(" (%d attempt%s)", job.attempt, job.attempt == 1 and "" or "s") or ""
      say(string.format("line %d: %s: %s%s", job.n, status, why, attempts))
    end
    if o.output == "json" then
      o.stdout:write(ordered_json(lh, {
        { "line", job.n }, { "status", status }, { job.kind == "correlated" and "key" or "guid", job.id },
        { "attempts", job.attempt }, { "code", code }, { "error", err and (type(err) == "table" and err.message or err) },
      }), "\n")
    end
  end

  local start -- start(job): one attempt

  -- An attempt's outcome (its call is over): the line's end, or a retry later.
  local function settle(job, v, err, code)
    active = active - 1
    if v then return finish(job, "stored") end
    if code == "ALREADY_EXISTS" then return finish(job, "duplicate") end
    local now = core.now()
    if RETRYABLE[code] and err.sent ~= false and job.attempt < o.retry.attempts then
      local delay = err.retry_delay or backoff(o.retry, job.attempt)
      if now + delay < job.deadline then
        retries[#retries + 1] = { at = now + delay, job = job }
        return
      end
    end
    if err.sent == false and code == "RESOURCE_EXHAUSTED" then return finish(job, "bad", err, code) end
    finish(job, RETRYABLE[code] and "undelivered" or REJECTED[code] and "rejected" or "failed", err, code)
  end

  start = function(job)
    job.attempt = job.attempt + 1
    job.deadline = job.deadline or core.now() + o.retry.deadline
    local opts = { timeout = math.max(0.001, math.min(o.timeout, job.deadline - core.now())), reply = false,
                   on_done = function(v, err, code) settle(job, v, err, code) end }
    local method = job.kind == "correlated" and client.put_correlated_event_async or client.put_external_event_async
    local ok, h, err, code = pcall(method, client, job.req, opts)
    if not ok then -- misuse the library found in the line (invalid UTF-8, a '/' in a guid, ...)
      job.attempt = 0
      return finish(job, "bad", (tostring(h):gsub("^.-bad argument #%d+ to '[^']+' %((.*)%)$", "%1")))
    end
    active = active + 1
    if not h then settle(job, nil, err, code) end -- refused before sending (too large, no token)
  end

  -- The next line that is not blank, and its number in the input.
  local physical = 0
  local function read_line()
    while true do
      local line = o.input:read("l")
      if line == nil then eof = true; return nil end
      physical = physical + 1
      line = line:gsub("\r$", "")
      if line:find("%S") then
        counts.lines = counts.lines + 1
        return line, physical
      end
    end
  end

  if o.progress == "bar" then draw(true) end
  while true do
    local now = core.now()
    -- retries that are due
    local keep = {}
    for _, r in ipairs(retries) do
      if r.at <= now then
        start(r.job)
      else
        keep[#keep + 1] = r
      end
    end
    retries = keep
    -- new lines while there is room (a line waiting for its retry keeps its slot)
    while not eof and active + #retries < o.concurrency do
      local line, n = read_line()
      if not line then break end
      local job, why = parse(o, n, line)
      if job then start(job) else finish({ n = n, text = line, attempt = 0, kind = "event" }, "bad", why) end
    end
    if eof and active == 0 and #retries == 0 then break end
    -- wait for completions, or for the next retry
    local wait = 0.1
    for _, r in ipairs(retries) do wait = math.min(wait, math.max(0, r.at - core.now())) end
    if client:in_flight() > 0 then client:poll(math.max(wait, 0.001)) else core.sleep(wait) end
    draw(false)
  end
  if o.progress == "bar" then
    draw(true) -- the bar at its end, however fast the run was; then cleared for the summary
    o.stderr:write("\r\27[K")
  elseif o.progress == "lines" then
    draw(true)
  end
  failed_file:close()
  local nfailed = done - counts.stored - counts.duplicate
  if nfailed == 0 then os.remove(o.failed_path) end
  counts.secs = core.now() - t0
  counts.failed_lines = nfailed
  return counts
end

return M
