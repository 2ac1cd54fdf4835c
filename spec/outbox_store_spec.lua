-- The outbox's file and writer thread, through littlehorse.core's outbox object: posts are
-- stored (durably, by the writer thread) before their job completes; limits refuse clearly;
-- leases keep a claimed record from being claimed twice until they end; acknowledgements,
-- dead letters, requeue and purge keep the counters right; files of a newer layout, of
-- another kind, or damaged are refused and left exactly as they were.
local core = require "littlehorse.core"
local sh = require "sh"
local rt = require "runtime"

local q = sh.q
local DEF = "outbox-event"

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/lh-outbox.XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

local function run(cmd)
  return rt.execute(cmd) == true
end

local function ok_wait(job) -- the result, or a failure naming the error
  local v, err = job:wait(10)
  assert(v ~= false, "the job did not finish in 10 s")
  assert(v ~= nil, tostring(err))
  return v
end

-- A claim's leased records, one table each (claim_async gives them by column), with the claim's
-- next_due, pending and acked.
local function claimed(job)
  local c = ok_wait(job)
  local rows = { next_due = c.next_due, pending = c.pending, acked = c.acked }
  for i = 1, c.n do
    rows[i] = { id = c.id[i], request = c.request[i], attempts = c.attempts[i], kind = c.kind[i] or "event",
                ordered = c.ordered[i], block = c.block[i] }
  end
  assert.equal(c.n, #c.id)
  assert.equal(c.n, #c.request)
  assert.equal(c.n, #c.attempts)
  return rows
end

local function post(ob, wf, content, guid)
  return ob:post_async { wf_run_id = wf, external_event_def_name = DEF, content = content, guid = guid }
end

-- The raw bytes of a file (nil when missing).
local read = sh.read_file

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- The SQLite header's big-endian 32-bit field at offset off (0-based).
local function header_u32(bytes, off)
  local a, b, c, d = bytes:byte(off + 1, off + 4)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function set_u32(bytes, off, v)
  local s = string.char(math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256,
                        math.floor(v / 256) % 256, v % 256) -- arithmetic: 5.1 has no bit operators
  return bytes:sub(1, off) .. s .. bytes:sub(off + 5)
end

-- A closed outbox file holding n records (its WAL checkpointed into it by close()).
local function make_file(path, n)
  local ob = core._outbox(path)
  for i = 1, n do ok_wait(post(ob, "wf", { n = i })) end
  ob:close()
end

describe("outbox store", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() run("rm -rf " .. q(dir)) end)

  it("makes a new file of the current layout and stores posts before their job completes", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path)
    assert.matches("^littlehorse.outbox: 0x%x+ %(" .. path:gsub("%p", "%%%0") .. "%)$", tostring(ob))
    assert.is_true(ok_wait(ob:ready_async()))
    local j, chosen = post(ob, "wf-1", { a = 1 })
    assert.matches("^littlehorse.outbox_job: 0x%x+ %(outbox:post, ", tostring(j))
    local guid = ok_wait(j)
    assert.matches("^%x+$", guid)
    assert.equal(32, #guid)
    assert.equal(chosen, guid) -- known at once, stored when the job completes
    assert.equal("given-guid", ok_wait(post(ob, "wf-1", 2, "given-guid")))
    -- a second object on the same file (its own connection and thread) sees both at once:
    -- the first one's jobs completed only after the commit
    local other = core._outbox(path)
    local rows = ok_wait(other:list_async("pending", { requests = true }))
    assert.equal(2, #rows)
    assert.same({ guid, "given-guid" }, { rows[1].guid, rows[2].guid })
    assert.equal("wf-1", rows[1].wf_run_id)
    assert.equal(DEF, rows[1].external_event_def_name)
    assert.equal("event", rows[1].kind)
    assert.equal(0, rows[1].attempts)
    -- the stored bytes are the packed request, with the guid the outbox chose added
    assert.equal(core.encode_put_external_event { wf_run_id = "wf-1", external_event_def_name = DEF,
                                                  content = 2, guid = "given-guid" }, rows[2].request)
    local packed = core.encode_put_external_event { wf_run_id = "wf-1", external_event_def_name = DEF, content = { a = 1 } }
    assert.equal(packed .. "\26\32" .. guid, rows[1].request)
    other:close()
    ob:close()
    local bytes = read(path)
    assert.equal(1, header_u32(bytes, 60))           -- user_version: the record layout
    assert.equal(0x4c484f42, header_u32(bytes, 68))  -- application_id: "LHOB"
  end)

  it("keeps a file of ExternalEvents at layout 1; its first CorrelatedEvent makes it layout 2, in that transaction", function()
    local path = dir .. "/a.db"
    make_file(path, 2)                                -- ExternalEvents only, as older versions write
    assert.equal(1, header_u32(read(path), 60))
    local ob = core._outbox(path)
    local j, key = ob:post_correlated_async { key = "order-17", external_event_def_name = DEF, content = { a = 1 } }
    assert.equal("order-17", key)
    assert.equal("order-17", ok_wait(j))            -- the job's result is the key too
    ok_wait(post(ob, "wf-1", 3))
    local rows = ok_wait(ob:list_async("pending", { requests = true }))
    assert.equal(4, #rows)
    assert.same({ "event", "event", "correlated", "event" }, { rows[1].kind, rows[2].kind, rows[3].kind, rows[4].kind })
    local c = rows[3]
    assert.same({ "order-17", DEF }, { c.key, c.external_event_def_name })
    assert.is_nil(c.wf_run_id)
    assert.is_nil(c.order_key)
    assert.matches("^%x+$", c.guid)                   -- the record's own name in the file, not sent
    -- the stored bytes are the packed PutCorrelatedEventRequest: 1 key, 2 { 1 def name }, 3 content
    assert.equal("\10\8order-17\18" .. string.char(#DEF + 2) .. "\10" .. string.char(#DEF) .. DEF .. "\26",
                 c.request:sub(1, 15 + #DEF))
    ob:close()
    assert.equal(2, header_u32(read(path), 60))
    -- this version reads it back (an older one refuses it: layout 2 is newer than its 1)
    ob = core._outbox(path)
    assert.equal(4, #ok_wait(ob:list_async("pending")))
    ob:close()
  end)

  it("holds an ordered record back behind its WfRun's pending one until that one ends; the file becomes layout 3", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path, { ordered = true })
    local function ids(rows)
      local out = {}
      for i, r in ipairs(rows) do out[i] = r.id end
      return out
    end
    local function claim() return ids(claimed(ob:claim_async(20))) end
    ok_wait(post(ob, "wf-1", 1))                      -- 1
    ok_wait(post(ob, "wf-2", 2))                      -- 2
    ob:close()
    assert.equal(1, header_u32(read(path), 60))     -- nothing held yet: older versions still read it
    ob = core._outbox(path, { ordered = true })
    ok_wait(post(ob, "wf-1", 3))                      -- 3: behind 1
    ok_wait(post(ob, "wf-1", 4))                      -- 4: behind 1 and 3
    local rows = ok_wait(ob:list_async("pending"))
    assert.same({ false, false, true, true }, { rows[1].held or false, rows[2].held or false, rows[3].held, rows[4].held })
    assert.is_nil(rows[3].due_in)
    assert.is_number(rows[1].due_in)
    assert.is_nil(ok_wait(ob:stats_async()).next_due) -- a held record is not due later: it waits
    assert.same({ 1, 2 }, claim())
    assert.same({}, claim())
    ok_wait(ob:ack_async { 1, { id = 2, outcome = "retry", delay = 60, code = "UNAVAILABLE" } })
    assert.same({ 3 }, claim())                       -- 1 ended: 3 is due, 4 still waits for it
    ok_wait(ob:ack_async { { id = 3, outcome = "dead", code = "NOT_FOUND", message = "gone" } })
    assert.same({ 4 }, claim())                       -- a dead letter holds nothing back
    -- a dead letter requeued behind a pending record of its WfRun is held back too
    ok_wait(post(ob, "wf-5", 5))                      -- 5
    assert.same({ 5 }, claim())
    ok_wait(ob:ack_async { { id = 5, outcome = "dead", code = "NOT_FOUND", message = "gone" } })
    ok_wait(post(ob, "wf-5", 6))                      -- 6: not held (5 is dead)
    assert.same({ 6 }, claim())
    ok_wait(ob:ack_async { { id = 6, outcome = "dead", code = "NOT_FOUND", message = "gone" } })
    assert.equal(2, ok_wait(ob:requeue_async { 5, 6 }))
    rows = ok_wait(ob:list_async("pending", { after = 4 }))
    assert.same({ 5, 6 }, ids(rows))
    assert.same({ false, true }, { rows[1].held or false, rows[2].held })
    assert.same({ 5 }, claim())
    ok_wait(ob:ack_async { { id = 5, outcome = "duplicate" } })
    assert.same({ 6 }, claim())
    ok_wait(ob:ack_async { 4, 6 })
    ob:close()
    assert.equal(3, header_u32(read(path), 60))
  end)

  it("releases at open a held record whose predecessor ended without releasing it", function()
    -- (what a process of an older version, which had the file open before it held anything,
    -- does when it delivers the record before: it deletes it and releases nothing)
    local path = dir .. "/a.db"
    local ob = core._outbox(path, { ordered = true })
    ok_wait(post(ob, "wf-1", 1))
    ok_wait(post(ob, "wf-1", 2))                      -- held behind 1
    ok_wait(post(ob, "wf-1", 3))                      -- held behind 1 and 2
    ob:close()
    assert(run("sqlite3 " .. q(path) .. " 'DELETE FROM records WHERE id = 1'"))
    ob = core._outbox(path, { ordered = true })
    local rows = claimed(ob:claim_async(10))
    assert.same({ 2 }, { #rows == 1 and rows[1].id })
    assert.is_true(ok_wait(ob:list_async("pending", { after = 2 }))[1].held) -- 3 still waits for 2
    ob:close()
  end)

  it("releases the record held behind one that expires", function()
    local path = dir .. "/a.db"
    local short = core._outbox(path, { ordered = true, max_age = 0.2 })
    ok_wait(post(short, "wf-1", 1))                   -- 1: expires 0.2 s after its post
    local expired = core.now() + 0.25
    local ob = core._outbox(path, { ordered = true, max_age = 0 })
    ok_wait(post(ob, "wf-1", 2))                      -- 2: never expires; held behind 1
    while core.now() < expired do core.sleep(0.01) end -- record 1's time runs out
    -- this object's first claim sweeps for expired records: 1 becomes a dead letter, 2 is due
    local rows = claimed(ob:claim_async(10))
    assert.same({ 2 }, { #rows == 1 and rows[1].id })
    local dead = ok_wait(ob:list_async("dead"))
    assert.same({ 1, "expired" }, { dead[1].id, dead[1].reason })
    short:close()
    ob:close()
  end)

  it("leaves the layout as it was when its first CorrelatedEvent is refused (full)", function()
    local path = dir .. "/a.db"
    make_file(path, 1)
    local ob = core._outbox(path, { max_rows = 1 })
    local v, err, code = ob:post_correlated_async({ key = "k", external_event_def_name = DEF }):wait(10)
    assert.is_nil(v)
    assert.equal("RESOURCE_EXHAUSTED", code)
    assert.equal("k", err.key)                          -- which post was not stored
    ob:close()
    assert.equal(1, header_u32(read(path), 60))
  end)

  it("names WfRunIds with parents as LittleHorse writes them (parent_child)", function()
    local ob = core._outbox(dir .. "/a.db")
    ok_wait(ob:post_async { wf_run_id = { id = "child", parent_wf_run_id = { id = "mid", parent_wf_run_id = { id = "top" } } },
                            external_event_def_name = DEF })
    assert.equal("top_mid_child", ok_wait(ob:list_async("pending"))[1].wf_run_id)
    ob:close()
  end)

  it("raises on misuse at post time, naming the field, and stores nothing", function()
    local ob = core._outbox(dir .. "/a.db")
    local ok, err = pcall(ob.post_async, ob, { wf_run_id = "w", external_event_def_name = DEF, content = { f = print } })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'post_async' %(content%.f: cannot encode a function", err)
    ok, err = pcall(ob.post_async, ob, { wf_run_id = "w", external_event_def_name = DEF, giud = "x" })
    assert.is_false(ok)
    assert.matches("giud", err)
    ok, err = pcall(ob.post_async, ob, { wf_run_id = "w", external_event_def_name = DEF }, { on_done = 1 })
    assert.matches("bad argument #2 to 'post_async' %(on_done: expected a function%)", err)
    ok, err = pcall(ob.post_async, ob, { wf_run_id = "w", external_event_def_name = DEF }, { ondone = print })
    assert.matches("outbox_store_spec.lua:%d+: bad argument #2 to 'post_async' %(ondone: unknown option %(did you mean on_done%?%)%)", err)
    ok, err = pcall(core._outbox, dir .. "/b.db", { max_row = 1 })
    assert.matches("max_row: unknown option %(did you mean max_rows%?%)", err)
    ok, err = pcall(core._outbox, dir .. "/b.db", { max_age = -1 })
    assert.matches("max_age: must be a number of seconds >= 0", err)
    ok, err = pcall(core._outbox, "")
    assert.matches("expected a file path", err)
    assert.equal(0, ok_wait(ob:stats_async()).accepted)
    ob:close()
    ob:close() -- idempotent
    assert.is_true(ob:is_closed())
    assert.equal("littlehorse.outbox: " .. tostring(ob):match("0x%x+") .. " (closed)", tostring(ob))
    ok, err = pcall(ob.stats_async, ob)
    assert.matches("this outbox is closed", err)
  end)

  it("refuses posts over max_rows and max_bytes with RESOURCE_EXHAUSTED, storing nothing of them", function()
    local ob = core._outbox(dir .. "/a.db", { max_rows = 3 })
    local jobs = {}
    for i = 1, 5 do jobs[i] = post(ob, "wf", i) end
    for i = 1, 3 do ok_wait(jobs[i]) end
    for i = 4, 5 do
      local v, err, code = jobs[i]:wait()
      assert.is_nil(v)
      assert.equal("RESOURCE_EXHAUSTED", code)
      assert.matches("outbox:post: RESOURCE_EXHAUSTED %(8%): outbox .*a%.db is full: it holds 3 records %(max_rows = 3", tostring(err))
      assert.matches("nothing was stored", err.message)
    end
    local st = ok_wait(ob:stats_async())
    assert.equal(3, st.pending)
    assert.equal(3, st.accepted)
    ob:close()
    local big = core._outbox(dir .. "/b.db", { max_bytes = 300 })
    ok_wait(post(big, "wf", string.rep("x", 150)))
    local v, err, code = post(big, "wf", string.rep("y", 150)):wait()
    assert.is_nil(v)
    assert.equal("RESOURCE_EXHAUSTED", code)
    assert.matches("would pass max_bytes = 300", err.message)
    assert.equal(1, ok_wait(big:stats_async()).pending)
    big:close()
  end)

  it("opens a new file from two outboxes at once (each waits for the other's switch to WAL)", function()
    for i = 1, 100 do
      local path = dir .. "/race" .. i .. ".db"
      local a, b = core._outbox(path), core._outbox(path)
      ok_wait(a:stats_async())
      ok_wait(b:stats_async())
      a:close()
      b:close()
    end
  end)

  -- Another process (the sqlite3 shell) holds the file's write lock for `seconds`.
  local function hold_lock(path, seconds) return sh.hold_sqlite_lock(dir, path, seconds) end

  it("waits up to busy_timeout for another process's write lock, then fails the post clearly, storing nothing", function()
    local path = dir .. "/a.db"
    make_file(path, 1)
    local ob = core._outbox(path, { busy_timeout = 0.3 })
    ok_wait(ob:stats_async())
    local released = hold_lock(path, 4)
    local t0 = core.now()
    local v, err, code = post(ob, "wf", "refused"):wait(10)
    local waited = core.now() - t0
    assert.is_nil(v)
    assert.equal("UNAVAILABLE", code)
    assert.matches("another process held the file longer than busy_timeout", err.message)
    assert.is_true(waited >= 0.29, "gave up after " .. waited .. " s")
    assert.is_false(released(), "the lock was let go before the post gave up; the spec proves nothing")
    local deadline = core.now() + 30
    while not released() do
      assert(core.now() < deadline, "the sqlite3 shell did not let go")
      core.sleep(0.01)
    end
    ok_wait(post(ob, "wf", "stored"))
    assert.equal(2, ok_wait(ob:stats_async()).pending)
    -- A lock held for less than busy_timeout is waited for.
    local ob2 = core._outbox(path, { busy_timeout = 30 })
    ok_wait(ob2:stats_async())
    hold_lock(path, 0.3)
    ok_wait(post(ob2, "wf", "waited"))
    assert.equal(3, ok_wait(ob2:stats_async()).pending)
    ob:close()
    ob2:close()
  end)

  it("leases claimed records: not claimed again (by any process's outbox) until acknowledged or the lease ends", function()
    local path = dir .. "/a.db"
    local a = core._outbox(path, { lease = 0.5 })
    local b = core._outbox(path, { lease = 0.5 })
    for i = 1, 4 do ok_wait(post(a, "wf", i)) end
    local got = claimed(a:claim_async(3))
    assert.equal(3, #got)
    assert.same({ 1, 2, 3 }, { got[1].id, got[2].id, got[3].id })
    local rest = claimed(b:claim_async(10))
    assert.equal(1, #rest)
    assert.equal(4, rest[1].id)
    assert.equal(0, #claimed(a:claim_async(10)))
    -- the lease of a's three ends (a "dies" without acknowledging): they come back
    local t0 = core.now()
    local again
    repeat
      again = claimed(b:claim_async(10))
      if #again == 0 then core.sleep(0.05) end
    until #again > 0 or core.now() - t0 > 5
    assert.is_true(core.now() - t0 >= 0.3, "came back before the lease ended")
    table.sort(again, function(x, y) return x.id < y.id end)
    assert.same({ 1, 2, 3 }, { again[1].id, again[2].id, again[3].id })
    -- a's late acknowledgement of a retry no longer applies (b holds the lease now); a
    -- delivery still does (delivered is delivered; a bare id is a delivery)
    local counts = ok_wait(a:ack_async { { id = 1, outcome = "retry", delay = 60, code = "UNAVAILABLE" }, 2 })
    assert.same({ delivered = 1, duplicates = 0, retries = 0, dead = 0 }, counts)
    for _, bad in ipairs { 0, -1, 1.5, "2" } do
      local ok, err = pcall(a.ack_async, a, { bad })
      assert.is_false(ok)
      assert.matches("%[1%]: expected a record id or a table", err)
    end
    counts = ok_wait(b:ack_async { { id = 1, outcome = "duplicate" }, { id = 2, outcome = "delivered" },
                                   { id = 3, outcome = "dead", code = "INVALID_ARGUMENT", message = "No ExternalEventDef named x" },
                                   { id = 4, outcome = "delivered" } })
    assert.same({ delivered = 1, duplicates = 1, retries = 0, dead = 1 }, counts)
    local st = ok_wait(b:stats_async())
    assert.same({ accepted = 4, delivered = 2, duplicates = 1, retries = 0, dead = 1, pending = 0, dead_letters = 1 },
                { accepted = st.accepted, delivered = st.delivered, duplicates = st.duplicates, retries = st.retries,
                  dead = st.dead, pending = st.pending, dead_letters = st.dead_letters })
    a:close()
    b:close()
  end)

  it("leases and removes exactly the records named, whatever ids lie between them", function()
    -- claims lease, and acknowledgements remove, runs of consecutive ids in one statement
    -- each: a run must never reach a record of another process's lease or one not named
    local path = dir .. "/a.db"
    local a = core._outbox(path, { lease = 60 })
    local b = core._outbox(path, { lease = 60 })
    for i = 1, 12 do ok_wait(post(a, "wf", string.rep("x", i))) end
    local got = claimed(a:claim_async(4))
    assert.same({ 1, 2, 3, 4 }, { got[1].id, got[2].id, got[3].id, got[4].id })
    ok_wait(a:ack_async { { id = 2, outcome = "release" }, { id = 3, outcome = "release" } })
    local ids = {}
    for _, r in ipairs(claimed(b:claim_async(20))) do ids[#ids + 1] = r.id end
    table.sort(ids)
    assert.same({ 2, 3, 5, 6, 7, 8, 9, 10, 11, 12 }, ids) -- 1 and 4: a's lease
    local owners = {}
    for _, r in ipairs(ok_wait(a:list_async("pending"))) do owners[r.id] = r.lease_owner end
    assert.equal(owners[1], owners[4])
    for _, id in ipairs(ids) do assert.is_true(owners[id] ~= owners[1], "record " .. id .. " is still a's") end
    -- a still holds 1 and 4: its retries apply
    assert.same({ delivered = 0, duplicates = 0, retries = 2, dead = 0 },
                ok_wait(a:ack_async { { id = 4, outcome = "retry", delay = 60, code = "UNAVAILABLE" },
                                      { id = 1, outcome = "retry", delay = 60, code = "UNAVAILABLE" } }))
    -- delivered out of order, one twice, one that never was, a duplicate in the middle; 8 not
    -- acknowledged at all
    local counts = ok_wait(b:ack_async { 12, 3, 2, 7, 99, { id = 6, outcome = "duplicate" }, 5, 3, 11, 9, 10 })
    assert.same({ delivered = 8, duplicates = 1, retries = 0, dead = 0 }, counts)
    local left, bytes = {}, 0
    for _, r in ipairs(ok_wait(a:list_async("pending", { requests = true }))) do
      left[#left + 1] = r.id
      bytes = bytes + #r.request
    end
    assert.same({ 1, 4, 8 }, left)
    local st = ok_wait(a:stats_async())
    assert.same({ pending = 3, delivered = 8, duplicates = 1, retries = 2, bytes = bytes },
                { pending = st.pending, delivered = st.delivered, duplicates = st.duplicates, retries = st.retries,
                  bytes = st.bytes })
    a:close()
    b:close()
  end)

  it("backs off retried records until their due time, and says when the next one is due", function()
    local ob = core._outbox(dir .. "/a.db")
    ok_wait(post(ob, "wf", 1))
    local rows = claimed(ob:claim_async(10))
    ok_wait(ob:ack_async { { id = rows[1].id, outcome = "retry", delay = 0.4, code = "UNAVAILABLE", message = "down" } })
    local none = claimed(ob:claim_async(10))
    assert.equal(0, #none)
    assert.is_true(none.next_due > 0.2 and none.next_due <= 0.4, tostring(none.next_due))
    local pending = ok_wait(ob:list_async("pending"))
    assert.equal(1, pending[1].attempts)
    assert.equal("UNAVAILABLE", pending[1].last_code)
    assert.equal("down", pending[1].last_message)
    core.sleep(none.next_due + 0.05)
    local back = claimed(ob:claim_async(10))
    assert.equal(1, #back)
    assert.equal(1, back[1].attempts)
    assert.equal(1, ok_wait(ob:stats_async()).retries)
    ob:close()
  end)

  it("keeps per-WfRun order when opened with ordered = true", function()
    local ob = core._outbox(dir .. "/a.db", { ordered = true })
    for i = 1, 3 do ok_wait(post(ob, "wf-a", i)) end
    for i = 1, 2 do ok_wait(post(ob, "wf-b", i)) end
    local rows = claimed(ob:claim_async(10)) -- one per WfRun: the first of each
    assert.equal(2, #rows)
    assert.same({ 1, 4 }, { rows[1].id, rows[2].id })
    -- the first of wf-a fails and backs off: nothing of wf-a goes before it
    ok_wait(ob:ack_async { { id = 1, outcome = "retry", delay = 0.3, code = "UNAVAILABLE" },
                           { id = 4, outcome = "delivered" } })
    rows = claimed(ob:claim_async(10))
    assert.same({ 5 }, { rows[1] and rows[1].id })
    ok_wait(ob:ack_async { { id = 5, outcome = "delivered" } })
    assert.equal(0, #claimed(ob:claim_async(10)))
    core.sleep(0.35)
    rows = claimed(ob:claim_async(10))
    assert.same({ 1 }, { rows[1].id })
    ok_wait(ob:ack_async { { id = 1, outcome = "delivered" } })
    assert.same({ 2 }, { claimed(ob:claim_async(10))[1].id })
    ok_wait(ob:ack_async { { id = 2, outcome = "dead", code = "INVALID_ARGUMENT" } })
    -- a dead letter does not hold back the records after it
    assert.same({ 3 }, { claimed(ob:claim_async(10))[1].id })
    ob:close()
    -- without ordered, every due record is claimed at once
    local free = core._outbox(dir .. "/b.db")
    for i = 1, 3 do ok_wait(post(free, "wf-a", i)) end
    assert.equal(3, #claimed(free:claim_async(10)))
    free:close()
  end)

  it("looks for expired records through an index, which a file made without it gets when opened", function()
    local path = dir .. "/a.db"
    local function sql(query)
      local p = io.popen("sqlite3 " .. q(path) .. " " .. q(query) .. " 2>&1")
      local out = p:read("*a")
      p:close()
      return out
    end
    local sweep = "EXPLAIN QUERY PLAN UPDATE records INDEXED BY records_expiry SET state = 1"
                  .. " WHERE state = 0 AND expires_at IS NOT NULL AND expires_at <= 0"
    local ob = core._outbox(path, { max_age = 0.2 })
    ok_wait(post(ob, "wf", 1))
    ob:close()
    assert.matches("USING INDEX records_expiry", sql(sweep)) -- a range of the index, not every record
    assert.is_true(run("sqlite3 " .. q(path) .. " 'DROP INDEX records_expiry'")) -- as a file made before it
    ob = core._outbox(path, { max_age = 0.2 })
    ok_wait(ob:ready_async()) -- the writer opens the file (and adds the index) on its own thread
    assert.matches("USING INDEX records_expiry", sql(sweep))
    -- and the sweep finds the record once it is past max_age
    local t0, dead = core.now(), {}
    repeat
      claimed(ob:claim_async(0)) -- (a claim of none still sweeps, at most once a second)
      dead = ok_wait(ob:list_async("dead"))
      if #dead == 0 then core.sleep(0.05) end
    until #dead > 0 or core.now() - t0 > 10
    assert.equal("expired", dead[1] and dead[1].reason)
    ob:close()
  end)

  it("turns records older than max_age into dead letters (reason expired) instead of delivering them late", function()
    local ob = core._outbox(dir .. "/a.db", { max_age = 0.2 })
    local t0, dead = core.now(), {} -- before the post: its age counts from the call at the latest
    ok_wait(post(ob, "wf", 1))
    -- claims of none (they still sweep, at most once a second) until max_age has run out
    repeat
      claimed(ob:claim_async(0))
      dead = ok_wait(ob:list_async("dead"))
      if #dead == 0 then core.sleep(0.05) end
    until #dead > 0 or core.now() - t0 > 10
    assert.is_true(core.now() - t0 >= 0.2, "expired before max_age")
    assert.equal(0, #claimed(ob:claim_async(10))) -- never sent late
    assert.equal(1, #dead)
    assert.equal("expired", dead[1].reason)
    assert.equal("DEADLINE_EXCEEDED", dead[1].last_code)
    assert.matches("expired: not delivered before its max_age ran out", dead[1].last_message)
    local st = ok_wait(ob:stats_async())
    assert.same({ 0, 1, 1 }, { st.pending, st.dead_letters, st.dead })
    -- requeued, it gets a new max_age window and is delivered
    assert.equal(1, ok_wait(ob:requeue_async { dead[1].id }))
    assert.equal(1, #claimed(ob:claim_async(10)))
    ob:close()
  end)

  it("lists, inspects, requeues and purges dead letters", function()
    local ob = core._outbox(dir .. "/a.db")
    for i = 1, 4 do ok_wait(post(ob, "wf", i)) end
    local rows = claimed(ob:claim_async(10))
    local acks = {}
    for i, r in ipairs(rows) do acks[i] = { id = r.id, outcome = "dead", code = "NOT_FOUND", message = "gone " .. i } end
    ok_wait(ob:ack_async(acks))
    local dead = ok_wait(ob:list_async("dead", { limit = 2 }))
    assert.same({ 1, 2 }, { dead[1].id, dead[2].id })
    assert.is_nil(dead[1].request)
    local page2 = ok_wait(ob:list_async("dead", { after = 2, requests = true }))
    assert.same({ 3, 4 }, { page2[1].id, page2[2].id })
    assert.equal("rejected", page2[1].reason)
    assert.equal("gone 3", page2[1].last_message)
    assert.equal(1, page2[1].attempts)
    assert.equal(core.encode_put_external_event { wf_run_id = "wf", external_event_def_name = DEF, content = 3 }
                 .. "\26\32" .. page2[1].guid, page2[1].request)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", tostring(page2[1].created_at))
    assert.equal(1, ok_wait(ob:requeue_async { 2 }))
    assert.equal(0, ok_wait(ob:requeue_async { 2 })) -- not dead any more
    assert.equal(2, ok_wait(ob:purge_async { 1, 3 }))
    local st = ok_wait(ob:stats_async())
    assert.same({ 1, 1 }, { st.pending, st.dead_letters })
    assert.equal(1, ok_wait(ob:purge_async("all")))
    st = ok_wait(ob:stats_async())
    assert.same({ 1, 0 }, { st.pending, st.dead_letters })
    local ok, err = pcall(ob.purge_async, ob)
    assert.matches("expected a list of record ids, or \"all\"", err)
    ok, err = pcall(ob.purge_async, ob, { 1, "x" })
    assert.matches("%[2%]: expected an integer", err)
    ob:close()
  end)

  it("reports the oldest pending record's age and the bytes held", function()
    local ob = core._outbox(dir .. "/a.db")
    local empty = ok_wait(ob:stats_async())
    assert.equal(0, empty.oldest_pending_age)
    assert.is_nil(empty.next_due)
    ok_wait(post(ob, "wf", 1))
    core.sleep(0.2)
    local st = ok_wait(ob:stats_async())
    assert.is_true(st.oldest_pending_age >= 0.19 and st.oldest_pending_age < 5, tostring(st.oldest_pending_age))
    local bytes = #core.encode_put_external_event { wf_run_id = "wf", external_event_def_name = DEF, content = 1 } + 34
    assert.equal(bytes, st.bytes)
    ob:close()
  end)

  it("lists each state's records in id order, page by page, whichever state holds more", function()
    -- The store reads a state's records by walking ids or through the due index, as the counts
    -- make cheaper (pending ten to one dead, then the other way round): the pages must agree.
    local ob = core._outbox(dir .. "/a.db")
    for i = 1, 14 do ok_wait(post(ob, "wf-" .. i, i)) end
    local function ids(state, after, limit)
      local out = {}
      for _, r in ipairs(ok_wait(ob:list_async(state, { after = after, limit = limit }))) do
        out[#out + 1] = r.id
        assert.equal(state, r.state)
      end
      return out
    end
    local function pages(state)
      local all, after = {}, 0
      repeat
        local page = ids(state, after, 5)
        for _, id in ipairs(page) do all[#all + 1] = id end
        after = page[#page] or after
      until #page < 5
      return all
    end
    local function settle(dead) -- claims every pending record; the named ones die, the rest return
      local acks = {}
      for _, r in ipairs(claimed(ob:claim_async(20))) do
        acks[#acks + 1] = dead[r.id] and { id = r.id, outcome = "dead", code = "NOT_FOUND", message = "gone" }
          or { id = r.id, outcome = "release" }
      end
      ok_wait(ob:ack_async(acks))
    end
    settle { [3] = true, [7] = true }
    assert.same({ 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14 }, pages("pending"))
    assert.same({ 8, 9 }, ids("pending", 6, 2))
    assert.same({ 3, 7 }, pages("dead"))
    assert.same({ 7 }, ids("dead", 3, 5))
    settle { [1] = true, [2] = true, [4] = true, [5] = true, [6] = true, [8] = true, [9] = true, [10] = true,
             [11] = true, [12] = true }
    assert.same({ 13, 14 }, pages("pending"))
    assert.same({ 14 }, ids("pending", 13, 5))
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, pages("dead"))
    assert.same({ 4, 5, 6 }, ids("dead", 3, 3))
    -- named ids change only dead letters: pending 13, a missing 99 and the twice-named 2 count once
    assert.equal(3, ok_wait(ob:requeue_async { 2, 13, 99, 5, 2, 8 }))
    assert.same({ 2, 5, 8, 13, 14 }, pages("pending"))
    assert.equal(2, ok_wait(ob:purge_async { 1, 14, 12, 12, 5 }))
    assert.same({ 3, 4, 6, 7, 9, 10, 11 }, pages("dead"))
    local st = ok_wait(ob:stats_async())
    assert.same({ 5, 7 }, { st.pending, st.dead_letters })
    ob:close()
  end)

  it("counts the oldest pending age from the first pending record, past older dead letters", function()
    local ob = core._outbox(dir .. "/a.db")
    ok_wait(post(ob, "wf-a", 1)) -- record 1: becomes a dead letter
    core.sleep(0.3) -- records 1 and 2 must differ in age for the check to mean anything
    local posted = core.now()
    ok_wait(post(ob, "wf-b", 2)) -- record 2: stays pending, leased
    ok_wait(post(ob, "wf-c", 3)) -- record 3: pending
    local rows = claimed(ob:claim_async(2))
    assert.same({ 1, 2 }, { rows[1].id, rows[2].id })
    ok_wait(ob:ack_async { { id = 1, outcome = "dead", code = "NOT_FOUND", message = "no such WfRun" } })
    local st = ok_wait(ob:stats_async())
    local since = core.now() - posted
    assert.same({ 2, 1 }, { st.pending, st.dead_letters })
    -- record 2's age, not record 1's (which is at least 0.3 s older); created_at is in ms
    assert.is_true(st.oldest_pending_age <= since + 0.002, st.oldest_pending_age .. " > " .. since)
    ok_wait(ob:ack_async { 2, 3 })
    assert.equal(0, ok_wait(ob:stats_async()).oldest_pending_age)
    ob:close()
  end)

  it("ends a watch when posts are stored, or when its time runs out", function()
    local ob = core._outbox(dir .. "/a.db")
    ok_wait(ob:ready_async())
    local t0 = core.now()
    assert.is_false(ob:watch_async(0.2):wait(10))
    assert.is_true(core.now() - t0 >= 0.19)
    local w = ob:watch_async(30)
    assert.is_false(w:done())
    ok_wait(post(ob, "wf", 1))
    assert.is_true(ok_wait(w))
    ob:close()
  end)

  it("commits what was queued before close(), and never blocks in __gc", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path)
    local jobs = {}
    for i = 1, 200 do jobs[i] = post(ob, "wf", i) end
    ob:close() -- waits for the writer: every queued post is committed
    for i = 1, 200 do assert.is_true(jobs[i]:done()) end
    local guids = {}
    for i = 1, 200 do guids[i] = ok_wait(jobs[i]) end
    local other = core._outbox(path)
    local rows = ok_wait(other:list_async("pending", { limit = 1000 }))
    assert.equal(200, #rows)
    for i = 1, 200 do assert.equal(guids[i], rows[i].guid) end
    other:close()
    -- dropped without close: __gc lets the writer finish alone (a later open sees the posts)
    local gone = core._outbox(path)
    for i = 1, 50 do post(gone, "wf", i) end
    gone = nil
    collectgarbage()
    collectgarbage()
    local again = core._outbox(path)
    local t0 = core.now()
    local n
    repeat
      n = ok_wait(again:stats_async()).pending
    until n == 250 or core.now() - t0 > 10
    assert.equal(250, n)
    again:close()
  end)

  it("cancels a job the writer has not begun (a post so cancelled is not stored)", function()
    local ob = core._outbox(dir .. "/a.db")
    local w = ob:watch_async(30)
    w:cancel()
    local v, err, code = w:wait(10)
    assert.is_nil(v)
    assert.equal("CANCELLED", code)
    -- posts queued behind a slow first batch (200 posts of 64 KiB) are still in the queue
    local big, jobs = string.rep("x", 65536), {}
    for i = 1, 200 do jobs[i] = post(ob, "wf", big, "b" .. i) end
    local last, guid = post(ob, "wf", 1, "last")
    last:cancel()
    local got, e2, c2 = last:wait(30)
    for i = 1, 200 do ok_wait(jobs[i]) end
    local rows = ok_wait(ob:list_async("pending", { limit = 1000 }))
    if c2 == "CANCELLED" then
      assert.is_nil(got)
      assert.matches("cancelled before the writer began it; the post was not stored", e2.message)
      assert.equal(200, #rows)
    else -- the writer had taken it already: stored, as if not cancelled
      assert.equal(guid, got)
      assert.equal(201, #rows)
    end
    ob:close()
  end)

  it("delivers on_done callbacks in poll(), and signals its fd", function()
    local ob = core._outbox(dir .. "/a.db")
    local got = {}
    for i = 1, 5 do
      post(ob, "wf", i, "g" .. i)
      ob:post_async({ wf_run_id = "wf", external_event_def_name = DEF, content = i, guid = "cb" .. i },
                    { on_done = function(guid, err) got[#got + 1] = guid or tostring(err) end })
    end
    local fd = ob:fd()
    assert.is_number(fd)
    local t0, n = core.now(), 0
    while #got < 5 and core.now() - t0 < 10 do n = n + ob:poll(0.5) end
    table.sort(got)
    assert.same({ "cb1", "cb2", "cb3", "cb4", "cb5" }, got)
    assert.is_true(n >= 5)
    assert.equal(0, ob:in_flight())
    ob:close()
  end)
end)

describe("outbox blocks (records posted together, stored several to a row)", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() run("rm -rf " .. q(dir)) end)

  -- n posts (guids g1..gn, contents { n = i }) queued while another process holds the file's
  -- write lock: the writer takes those queued when it begins a transaction, waits for the lock,
  -- then takes the rest in a second one. Of the two, the smaller may be under 8 records (stored
  -- as records of their own); the other is stored as blocks: at least n - 7 records in blocks.
  local function post_together(ob, path, n)
    ok_wait(ob:ready_async())
    sh.hold_sqlite_lock(dir, path, 1)
    local jobs = {}
    for i = 1, n do jobs[i] = post(ob, "wf", { n = i }, "g" .. i) end
    for i = 1, n do assert.equal("g" .. i, ok_wait(jobs[i])) end
  end

  local function in_blocks(path) return tonumber(sh.sqlite(path, "SELECT coalesce(sum(n), 0) FROM blocks")) end

  -- every record of the claims, by id, with the blocks they came in (block id -> their ids)
  local function claim_all(ob, n)
    local got, blocks = {}, {}
    repeat
      local rows = claimed(ob:claim_async(7))
      assert.is_true(#rows > 0, "a claim found nothing, " .. #got .. " of " .. n .. " claimed")
      for _, r in ipairs(rows) do
        got[r.id] = r
        if r.block then
          blocks[r.block] = blocks[r.block] or {}
          table.insert(blocks[r.block], r.id)
        end
      end
      local k = 0
      for _ in pairs(got) do k = k + 1 end
    until k >= n
    return got, blocks
  end

  it("stores them as blocks (layout 4 from that transaction); lists, pages and counts them as records", function()
    local path = dir .. "/a.db"
    make_file(path, 2)                                 -- records of their own, layout 1
    assert.equal("1\n", sh.sqlite(path, "PRAGMA user_version"))
    local ob = core._outbox(path)
    post_together(ob, path, 30)
    assert.is_true(in_blocks(path) >= 23, "only " .. in_blocks(path) .. " records in blocks")
    assert.equal("4\n", sh.sqlite(path, "PRAGMA user_version"))
    local rows = ok_wait(ob:list_async("pending", { requests = true }))
    assert.equal(32, #rows)
    local bytes = 0
    for i, r in ipairs(rows) do
      assert.equal(i, r.id)
      bytes = bytes + #r.request
      if i > 2 then
        assert.same({ "g" .. (i - 2), "wf", DEF, "event", 0, "pending" },
                    { r.guid, r.wf_run_id, r.external_event_def_name, r.kind, r.attempts, r.state })
        assert.equal(core.encode_put_external_event { wf_run_id = "wf", external_event_def_name = DEF,
                                                      content = { n = i - 2 }, guid = "g" .. (i - 2) }, r.request)
        assert.is_number(r.due_in)
      end
    end
    -- pages of 7 from anywhere: each record once, in id order, across blocks and rows
    for _, after in ipairs { 0, 1, 5, 17, 31 } do
      local ids, a = {}, after
      repeat
        local page = ok_wait(ob:list_async("pending", { after = a, limit = 7 }))
        assert.is_true(#page <= 7)
        for _, r in ipairs(page) do ids[#ids + 1] = r.id; a = r.id end
      until #page == 0
      local want = {}
      for i = after + 1, 32 do want[#want + 1] = i end
      assert.same(want, ids)
    end
    local st = ok_wait(ob:stats_async())
    assert.same({ 32, 32, bytes }, { st.accepted, st.pending, st.bytes })
    ob:close()
    -- another outbox reads the same
    local other = core._outbox(path)
    assert.equal(32, #ok_wait(other:list_async("pending")))
    other:close()
    -- An older version that had the file open before it became layout 4 stores a record with
    -- SQLite's next rowid (as here, by hand): that id must be past every block's, or one id
    -- would name two records.
    assert.equal("", sh.sqlite(path, "INSERT INTO records (guid, kind, wf_run_id, def_name, request, created_at," ..
                                     " due_at) VALUES ('older', 1, 'wf', '" .. DEF .. "', x'0a', 1, 1)"))
    local older = tonumber(sh.sqlite(path, "SELECT id FROM records WHERE guid = 'older'"))
    assert.is_true(older > 32, "the older version's record took id " .. older)
    other = core._outbox(path)
    local ids = {}
    for _, r in ipairs(ok_wait(other:list_async("pending"))) do
      assert.is_nil(ids[r.id], "two records with id " .. r.id)
      ids[r.id] = true
    end
    assert.is_true(ids[older])
    other:close()
  end)

  it("claims a block whole, and removes it with one outcome when all its records were delivered", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path)
    post_together(ob, path, 30)
    local got, blocks = claim_all(ob, 30)
    local acks, nblocks, first = {}, 0, nil
    for bid, ids in pairs(blocks) do
      nblocks = nblocks + 1
      table.sort(ids)
      assert.equal(bid, ids[1])
      assert.equal(bid + #ids - 1, ids[#ids])    -- consecutive ids, all of them in one claim
      acks[#acks + 1] = { id = bid, outcome = "block", count = #ids, duplicates = first and 0 or 1 }
      first = first or bid
    end
    assert.is_true(nblocks >= 1)
    for id, r in pairs(got) do
      assert.equal(0, r.attempts)
      if not r.block then acks[#acks + 1] = id end
    end
    assert.same({ delivered = 29, duplicates = 1, retries = 0, dead = 0 }, ok_wait(ob:ack_async(acks)))
    local st = ok_wait(ob:stats_async())
    assert.same({ 0, 0, 29, 1 }, { st.pending, st.bytes, st.delivered, st.duplicates })
    assert.equal("0|0\n", sh.sqlite(path, "SELECT (SELECT count(*) FROM blocks), (SELECT count(*) FROM block_data)"))
    -- a block outcome is checked like any other
    for _, bad in ipairs { { id = first, outcome = "block" }, { id = first, outcome = "block", count = 65 },
                           { id = first, outcome = "block", count = 2, duplicates = -1 } } do
      local ok, err = pcall(ob.ack_async, ob, { bad })
      assert.is_false(ok)
      assert.matches("%[1%]%.%a+: expected", err)
    end
    ob:close()
  end)

  it("makes a block whose records are not all delivered records of their own, whose outcomes then apply", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path)
    post_together(ob, path, 20)
    local got, blocks = claim_all(ob, 20)
    local x -- the first three records of a block of at least 8
    for bid, ids in pairs(blocks) do if #ids >= 8 then x = bid end end
    assert.is_number(x, "no block of 8")
    local acks = { { id = x, outcome = "retry", delay = 60, code = "UNAVAILABLE" },
                   { id = x + 1, outcome = "dead", code = "INVALID_ARGUMENT", message = "no such def" },
                   { id = x + 2, outcome = "release" } }
    for id in pairs(got) do
      if id < x or id > x + 2 then acks[#acks + 1] = id end
    end
    assert.same({ delivered = 17, duplicates = 0, retries = 1, dead = 1 }, ok_wait(ob:ack_async(acks)))
    assert.equal("0\n", sh.sqlite(path, "SELECT count(*) FROM blocks"))
    local pending = ok_wait(ob:list_async("pending", { requests = true }))
    assert.same({ x, x + 2 }, { pending[1].id, pending[2].id })
    assert.same({ "g" .. x, 1, "UNAVAILABLE" }, { pending[1].guid, pending[1].attempts, pending[1].last_code })
    assert.is_true(pending[1].due_in > 30)
    assert.same({ "g" .. (x + 2), 0 }, { pending[2].guid, pending[2].attempts })
    assert.is_nil(pending[2].lease_owner)
    assert.equal(got[x + 2].request, pending[2].request)
    local dead = ok_wait(ob:list_async("dead", { requests = true }))
    assert.same({ x + 1, "g" .. (x + 1), "INVALID_ARGUMENT", "no such def" },
                { dead[1].id, dead[1].guid, dead[1].last_code, dead[1].last_message })
    assert.equal(got[x + 1].request, dead[1].request)
    local st = ok_wait(ob:stats_async())
    assert.same({ 2, 1, 17, 1, 1 }, { st.pending, st.dead_letters, st.delivered, st.retries, st.dead })
    assert.equal(#got[x].request + #got[x + 1].request + #got[x + 2].request, st.bytes)
    -- x + 2 (released) is due again, x backs off; x + 1 requeued is due again, with its bytes
    local again = claimed(ob:claim_async(10))
    assert.same({ x + 2 }, { again[1].id, again[2] and again[2].id })
    assert.is_nil(again[1].block)
    assert.equal(1, ok_wait(ob:requeue_async { x + 1 }))
    again = claimed(ob:claim_async(10))
    assert.same({ x + 1, got[x + 1].request }, { again[1].id, again[1].request })
    ob:close()
  end)

  it("claims a block again, whole, once its lease ends; late outcomes of the first claimer remove it once, never a newer record", function()
    local path = dir .. "/a.db"
    local a = core._outbox(path, { lease = 0.5 })
    local b = core._outbox(path, { lease = 0.5 })
    post_together(a, path, 20)
    local first = claim_all(a, 20)
    assert.equal(0, #claimed(b:claim_async(100)))
    local t0, again = core.now(), {}
    repeat
      again = claimed(b:claim_async(100))
      if #again == 0 then core.sleep(0.05) end
    until #again > 0 or core.now() - t0 > 10
    assert.is_true(core.now() - t0 >= 0.3, "came back before the lease ended")
    local blocks = {}
    for _, r in ipairs(again) do
      assert.equal(first[r.id].request, r.request)
      if r.block then blocks[r.block] = (blocks[r.block] or 0) + 1 end
    end
    local acks, rows = {}, 0
    for bid, n in pairs(blocks) do acks[#acks + 1] = { id = bid, outcome = "block", count = n, duplicates = 0 } end
    for _, r in ipairs(again) do if not r.block then acks[#acks + 1] = r.id; rows = rows + 1 end end
    assert.equal(20, #again)
    assert.same({ delivered = 20, duplicates = 0, retries = 0, dead = 0 }, ok_wait(a:ack_async(acks)))
    assert.same({ delivered = 0, duplicates = 0, retries = 0, dead = 0 }, ok_wait(b:ack_async(acks)))
    local st = ok_wait(b:stats_async())
    assert.same({ 0, 20 }, { st.pending, st.delivered })
    -- The file is empty now. New posts never take the ids of records gone, so outcomes that
    -- come late for those (a's, whose lease ended long ago) cannot remove the new records.
    post_together(b, path, 20)
    local new = ok_wait(b:list_async("pending"))
    assert.equal(20, #new)
    assert.is_true(new[1].id > 20, "a new record took the id " .. new[1].id .. " of one gone")
    assert.same({ delivered = 0, duplicates = 0, retries = 0, dead = 0 }, ok_wait(a:ack_async(acks)))
    st = ok_wait(b:stats_async())
    assert.same({ 20, 20, 0 }, { st.pending, #ok_wait(b:list_async("pending")), st.dead_letters })
    a:close()
    b:close()
  end)

  it("turns a block whose records expire into dead letters (reason expired), never sent late", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path, { max_age = 0.2 })
    post_together(ob, path, 20)
    assert.is_true(in_blocks(path) >= 13)
    local t0, dead = core.now(), {}
    repeat
      claimed(ob:claim_async(0)) -- (a claim of none still sweeps, at most once a second)
      dead = ok_wait(ob:list_async("dead"))
      if #dead < 20 then core.sleep(0.05) end
    until #dead == 20 or core.now() - t0 > 10
    assert.equal(20, #dead)
    for i, r in ipairs(dead) do
      assert.same({ i, "g" .. i, "expired" }, { r.id, r.guid, r.reason })
    end
    assert.equal(0, #claimed(ob:claim_async(10)))
    assert.equal("0\n", sh.sqlite(path, "SELECT count(*) FROM blocks"))
    local st = ok_wait(ob:stats_async())
    assert.same({ 0, 20, 20 }, { st.pending, st.dead_letters, st.dead })
    ob:close()
  end)

  it("never gives an id twice: not after the highest records are gone, not beside an older version", function()
    local path = dir .. "/a.db"
    make_file(path, 3)
    -- as a file of an older version: no reserved row, no trigger
    assert.equal("", sh.sqlite(path, "DELETE FROM records WHERE state = 2; DROP TRIGGER records_ids"))
    local ob = core._outbox(path)
    ok_wait(ob:ready_async())
    -- the highest record is delivered and removed; the next post must not take its id
    local top = claimed(ob:claim_async(10))
    assert.equal(3, #top)
    ok_wait(ob:ack_async { 1, 2, 3 })
    assert.equal(0, #ok_wait(ob:list_async("pending")))
    ok_wait(post(ob, "wf", "after", "after"))
    local rows = ok_wait(ob:list_async("pending"))
    assert.is_true(rows[1].id > 3, "a new record took the id " .. rows[1].id .. " of one gone")
    -- an older version's store (SQLite's next rowid, past the reserved row), then its record
    -- is delivered and removed: this version's next records are past it
    assert.equal("", sh.sqlite(path, "INSERT INTO records (guid, kind, wf_run_id, def_name, request, created_at," ..
                                     " due_at) VALUES ('older', 1, 'wf', '" .. DEF .. "', x'0a', 1, 1)"))
    local older = tonumber(sh.sqlite(path, "SELECT id FROM records WHERE guid = 'older'"))
    assert.equal("", sh.sqlite(path, "DELETE FROM records WHERE guid = 'older'"))
    ok_wait(post(ob, "wf", "later", "later"))
    rows = ok_wait(ob:list_async("pending"))
    assert.equal("later", rows[2].guid)
    assert.is_true(rows[2].id > older, "a new record took the id " .. rows[2].id .. " an older version gave")
    ob:close()
  end)

  it("reports a damaged block (DATA_LOSS) and leaves it as it is", function()
    local path = dir .. "/a.db"
    local ob = core._outbox(path)
    post_together(ob, path, 20)
    ob:close()
    assert.equal("", sh.sqlite(path, "UPDATE block_data SET data = substr(data, 1, length(data) - 3)"))
    local before = sh.sqlite(path, "SELECT hex(data) FROM block_data")
    ob = core._outbox(path)
    local v, err, code = ob:claim_async(100):wait(10)
    assert.is_nil(v)
    assert.equal("DATA_LOSS", code)
    assert.matches("the block of records %d+ is damaged", err.message)
    v, err, code = ob:list_async("pending"):wait(10)
    assert.same({ "DATA_LOSS" }, { code })
    ob:close()
    assert.equal(before, sh.sqlite(path, "SELECT hex(data) FROM block_data"))
    -- a block whose records are missing altogether is reported too, not skipped
    assert.equal("", sh.sqlite(path, "DELETE FROM block_data"))
    ob = core._outbox(path)
    v, err, code = ob:claim_async(100):wait(10)
    assert.same({ "DATA_LOSS" }, { code })
    assert.matches("the block of records %d+ is damaged", err.message)
    v, err, code = ob:list_async("pending"):wait(10)
    assert.same({ "DATA_LOSS" }, { code })
    ob:close()
  end)
end)

describe("outbox files it must not use", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() run("rm -rf " .. q(dir)) end)

  -- open, ask whether it is ready: nil, err, code, and the file unchanged
  local function refused(path)
    local before = read(path)
    local ob = core._outbox(path)
    local v, err, code = ob:ready_async():wait()
    -- every other job fails the same way
    local v2, err2 = post(ob, "wf", 1):wait()
    ob:close()
    assert.is_nil(v)
    assert.is_nil(v2)
    assert.equal(err.message, err2.message)
    assert.equal(before, read(path), "the refused file was changed")
    return err, code
  end

  it("refuses a file written by a newer version (a higher record layout)", function()
    local path = dir .. "/a.db"
    make_file(path, 3)
    write(path, set_u32(read(path), 60, 5))
    local err, code = refused(path)
    assert.equal("FAILED_PRECONDITION", code)
    assert.matches("was written by a newer version of littlehorse %(record layout 5; this version reads layout 4%); " ..
                   "it was left as it is", err.message)
  end)

  it("refuses an SQLite database that is not an outbox", function()
    local path = dir .. "/a.db"
    make_file(path, 1)
    write(path, set_u32(read(path), 68, 12345))
    local err, code = refused(path)
    assert.equal("FAILED_PRECONDITION", code)
    assert.matches("is not a littlehorse outbox", err.message)
  end)

  it("refuses a file that is not a database at all", function()
    local path = dir .. "/a.db"
    write(path, string.rep("not a database\n", 500))
    local err, code = refused(path)
    assert.equal("DATA_LOSS", code)
    assert.matches("file is not a database %(the file is damaged; it was left as it is%)", err.message)
  end)

  it("detects a damaged file at open (quick_check) and leaves it as it is", function()
    local path = dir .. "/a.db"
    make_file(path, 300)
    local bytes = read(path)
    local page = math.floor(header_u32(bytes, 16) / 65536) -- page size (a 2-byte field)
    if page == 1 then page = 65536 end
    assert.is_true(#bytes >= 4 * page)
    -- scribble over the header of the second page (the records' b-tree root)
    local at = page
    write(path, bytes:sub(1, at) .. string.rep("\255", 12) .. bytes:sub(at + 13))
    local err, code = refused(path)
    assert.equal("DATA_LOSS", code)
    assert.matches("is corrupt %(SQLite quick_check: .+%); it was left as it is", err.message)
  end)

  it("refuses a file it cannot write (a read-only file)", function()
    local path = dir .. "/a.db"
    make_file(path, 1)
    if io.popen("id -u"):read("*l") == "0" then
      -- root writes through permission bits: a read-only bind mount of the directory instead
      local ro = dir .. "/ro"
      assert(run("mkdir " .. q(ro)))
      if not run("mount --bind -o ro " .. q(dir) .. " " .. q(ro) .. " 2>/dev/null") then
        pending("cannot make a read-only mount here (needs mount permission)")
        return
      end
      finally(function() run("umount " .. q(ro)) end)
      path = ro .. "/a.db"
    else
      assert(run("chmod 0444 " .. q(path) .. " && chmod 0555 " .. q(dir)))
      finally(function() run("chmod 0755 " .. q(dir)) end)
    end
    local err, code = refused(path)
    assert.equal("FAILED_PRECONDITION", code)
    assert.matches("read%-only", err.message)
  end)

  it("says why when the directory does not exist", function()
    local ob = core._outbox(dir .. "/no/such/dir/a.db")
    local v, err, code = ob:ready_async():wait()
    ob:close()
    assert.is_nil(v)
    assert.equal("FAILED_PRECONDITION", code)
    assert.matches("cannot open: unable to open database file %(check that the directory exists and is writable%)", err.message)
  end)
end)
