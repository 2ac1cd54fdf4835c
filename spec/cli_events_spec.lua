-- bin/lh-put-event's newer modes as a real process against real dev servers: CorrelatedEvents
-- (--key, and lhctl's `put correlatedEvent` form), listing a WfRun's events, and bulk posting
-- from JSON lines (concurrency, per-line retries, derived guids and exactly-once re-runs, the
-- failed file fed back in, progress on a terminal and off it, exit statuses).
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local sh = require "sh"
local cli = require "cli_run"

local defer = require "cleanup" (function(f) finally(f) end)
local q = sh.q

local function start(opts)
  local srv = devserver.start(opts)
  defer(function() srv:stop() end)
  return srv
end

local function client_for(srv)
  local c = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
  defer(function() c:close() end)
  return c
end

local function conn(srv) return { "--host", "127.0.0.1", "--port", tostring(srv.port) } end

local function with(args, more)
  local a = {}
  for _, v in ipairs(args) do a[#a + 1] = v end
  for _, v in ipairs(more) do a[#a + 1] = v end
  return a
end

local function json_of(r)
  assert.equal(0, r.status, "exit " .. r.status .. ": " .. r.err)
  local v, err = lh.json_decode(r.out)
  assert.is_table(v, "stdout is not JSON: " .. tostring(err) .. ": " .. r.out)
  return v
end

local function json_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = assert(lh.json_decode(line), line) end
  return out
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. q(d)))
  defer(function() os.execute("rm -rf " .. q(d)) end)
  return d
end

local function lines_file(dir, name, lines)
  local path = dir .. "/" .. name
  cli.write_file(path, table.concat(lines, "\n") .. "\n")
  return path
end

-- What lh-put-event derives for a line without a guid, computed here with sha256sum.
local function derived_guid(line)
  local p = io.popen("printf 'lh-put-event guid v1\\n%s' " .. q(line) .. " | sha256sum")
  local h = p:read("*l")
  p:close()
  return h:sub(1, 32)
end

lazy_teardown(function() cli.cleanup() end)

describe("lh-put-event: CorrelatedEvents", function()
  it("posts by --key and answers a repeated key with the stored one (exit 0, duplicate)", function()
    local srv = start {}
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "paid", correlated_event_config = true })
    local ce = json_of(cli.run(with({ "--key", "order-1", "--event", "paid", "--json", '{"amount":42}' }, conn(srv))))
    assert.same({ key = "order-1", external_event_def_id = { name = "paid" } }, ce.id)
    assert.equal("order-1", ce.key)
    assert.equal("paid", ce.external_event_def_name)
    assert.equal("JSON_OBJ", ce.content_type)
    assert.same({ amount = 42 }, ce.content)
    assert.same({}, ce.external_events)
    assert.same({ false, false, 1 }, { ce.duplicate, ce.deleted, ce.attempts })
    local again = json_of(cli.run(with({ "--key", "order-1", "--event", "paid", "--int", "7" }, conn(srv))))
    assert.is_true(again.duplicate)
    assert.same({ amount = 42 }, again.content) -- the stored one
    assert.equal(ce.created_at, again.created_at)
    assert.same({ amount = 42 }, assert(client:get_correlated_event { key = "order-1", external_event_def_name = "paid" }).content)
  end)

  it("takes lhctl's form (put correlatedEvent KEY NAME TYPE PAYLOAD) and prints lhctl's JSON and text", function()
    local srv = start {}
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "paid", correlated_event_config = true })
    local r = cli.run(with({ "put", "correlatedEvent", "order-2", "paid", "INT", "5", "--output", "lhctl" }, conn(srv)))
    local ce = json_of(r)
    assert.same({ key = "order-2", externalEventDefId = { name = "paid" } }, ce.id)
    assert.same({ int = "5" }, ce.content)
    assert.same({}, ce.externalEvents)
    assert.matches('^{\n  "id": {\n    "key": "order%-2",', r.out)
    r = cli.run(with({ "put", "correlatedEvent", "order-2", "paid", "--output", "text" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    assert.matches("^already stored %(duplicate key; nothing new was stored%):\n  key           order%-2\n", r.out)
    assert.matches("\n  content       5\n", r.out)
    -- a WfRun that waits on the key gets an ExternalEvent, which the output lists
    local devhook = require "devhook"
    assert.equal("OK", devhook.start_waiting(srv.target, { key = "order-3", def = "paid", wf_run_id = "wf-3" }).code)
    ce = json_of(cli.run(with({ "--key", "order-3", "--event", "paid", "--str", "ok" }, conn(srv))))
    assert.equal(1, #ce.external_events)
    assert.same({ id = "wf-3" }, ce.external_events[1].wf_run_id)
  end)

  it("keeps the exit contract: 2 usage, 3 rejected, 4 unavailable (with the hint), retries with the same key", function()
    local srv = start { defs = { "plain" }, args = { "--store-then-fail", "1" } }
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "paid", correlated_event_config = true })
    local r = cli.run(with({ "--key", "k", "--event", "paid", "--guid", "g" }, conn(srv)))
    assert.equal(2, r.status)
    assert.matches("%-%-guid: a CorrelatedEvent has none %(its key is its idempotency key%)", r.err)
    r = cli.run(with({ "--key", "k", "--wf-run-id", "w", "--event", "paid" }, conn(srv)))
    assert.equal(2, r.status)
    r = cli.run(with({ "--key", "a/b", "--event", "paid" }, conn(srv)))
    assert.equal(2, r.status)
    assert.matches("key: must not contain '/' or '~'", r.err)
    r = cli.run(with({ "--key", "k", "--event", "plain" }, conn(srv)))
    assert.equal(3, r.status)
    assert.matches("does not have CorrelatedEvent enabled %(1 attempt; key k%)", r.err)
    -- the first attempt is stored and its reply lost: the retry finds it (duplicate)
    local ce = json_of(cli.run(with({ "--key", "lost", "--event", "paid", "--int", "1" }, conn(srv))))
    assert.same({ true, 2 }, { ce.duplicate, ce.attempts })
    srv:stop()
    r = cli.run(with({ "--key", "k2", "--event", "paid", "--retries", "1", "--timeout", "1" }, conn(srv)))
    assert.equal(4, r.status)
    assert.matches("rerun with the same %-%-key to retry without risk of a duplicate", r.err)
  end)
end)

describe("lh-put-event: listing a WfRun's events", function()
  it("prints every event of every page (json lines, text, lhctl), and nothing for a WfRun without any", function()
    local srv = start { defs = { "a", "b" } }
    local client = client_for(srv)
    for i, def in ipairs { "a", "b", "a" } do
      assert(client:put_external_event { wf_run_id = { id = "c", parent_wf_run_id = { id = "p" } },
                                         external_event_def_name = def, guid = "g" .. i, content = i })
    end
    local r = cli.run(with({ "--list", "--wf-run-id", "p_c", "--page-size", "1" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    local evs = json_lines(r.out)
    assert.equal(3, #evs)
    local seen = {}
    for _, ev in ipairs(evs) do
      assert.equal("p_c", ev.wf_run_id)
      assert.is_nil(ev.duplicate)
      seen[#seen + 1] = ev.external_event_def_name .. "/" .. ev.guid .. "=" .. ev.content
    end
    assert.same({ "a/g1=1", "a/g3=3", "b/g2=2" }, seen)
    r = cli.run(with({ "list", "externalEvent", "p_c", "--output", "lhctl" }, conn(srv)))
    local list = json_of(r)
    assert.equal(3, #list.results)
    assert.same({ id = "c", parentWfRunId = { id = "p", parentWfRunId = lh.null } }, list.results[1].id.wfRunId)
    assert.same({ int = "1" }, list.results[1].content)
    r = cli.run(with({ "--list", "--wf-run-id", "p_c", "--output", "text" }, conn(srv)))
    assert.equal(0, r.status)
    assert.equal(3, select(2, r.out:gsub("  wf_run_id     p_c\n", "")))
    r = cli.run(with({ "--list", "--wf-run-id", "nobody" }, conn(srv)))
    assert.same({ 0, "", "" }, { r.status, r.out, r.err })
    r = cli.run(with({ "--list", "--wf-run-id", "w", "--json", "1" }, conn(srv)))
    assert.equal(2, r.status)
    srv:stop()
    r = cli.run(with({ "--list", "--wf-run-id", "p_c", "--retries", "0", "--timeout", "1" }, conn(srv)))
    assert.equal(4, r.status)
    assert.matches("ListExternalEvents: UNAVAILABLE", r.err)
  end)
end)

describe("lh-put-event --file (bulk)", function()
  it("posts every line with calls in flight, and a re-run stores nothing twice", function()
    local srv = start { defs = { "ev" } }
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "corr", correlated_event_config = true })
    local dir = tmpdir()
    local lines = {}
    for i = 1, 40 do
      if i % 4 == 0 then
        lines[#lines + 1] = string.format('{"key": "k%d", "event": "corr", "content": {"n": %d}}', i, i)
      elseif i % 5 == 0 then
        lines[#lines + 1] = string.format('{"wf_run_id": "w%d", "guid": "own-%d", "type": "STR", "value": "v%d"}', i, i, i)
      else
        lines[#lines + 1] = string.format('{"wf_run_id": "w%d", "content": %d}', i, i)
      end
    end
    lines[#lines + 1] = "   " -- blank lines are skipped
    local path = lines_file(dir, "events.jsonl", lines)
    local r = cli.run(with({ "--file", path, "--event", "ev", "--concurrency", "8" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    local results = json_lines(r.out)
    assert.equal(40, #results)
    local by_line = {}
    for _, res in ipairs(results) do by_line[res.line] = res end
    for i = 1, 40 do
      local res = by_line[i]
      assert.equal("stored", res.status, lines[i])
      assert.equal(1, res.attempts)
      if i % 4 == 0 then
        assert.equal("k" .. i, res.key)
        assert.same({ n = i }, assert(client:get_correlated_event { key = "k" .. i, external_event_def_name = "corr" }).content)
      else
        local guid = i % 5 == 0 and ("own-" .. i) or derived_guid(lines[i])
        assert.equal(guid, res.guid)
        local ev = assert(client:get_external_event { wf_run_id = "w" .. i, external_event_def_name = "ev", guid = guid })
        assert.equal(i % 5 == 0 and ("v" .. i) or i, ev.content)
      end
    end
    assert.matches("40 lines in [%d.]+ s %(%d+/s%): 40 stored, 0 already stored, 0 rejected, 0 undelivered, 0 failed, 0 bad\n$", r.err)
    assert.is_nil(sh.read_file(path .. ".failed")) -- nothing failed: no failed file
    local stored = srv:stats()
    -- the same file again: every line is there already
    r = cli.run(with({ "--file", path, "--event", "ev", "--output", "quiet" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    assert.equal("", r.out)
    assert.matches(": 0 stored, 40 already stored,", r.err)
    local after = srv:stats()
    assert.same({ stored.events, stored.correlated }, { after.events, after.correlated })
  end)

  it("retries each line with its own guid or key: lost replies and failures store each line once", function()
    local srv = start { defs = { "ev" }, args = { "--fail-next", "5", "--store-then-fail-rate", "0.5", "--seed", "7" } }
    local client = client_for(srv)
    assert(client:put_external_event_def { name = "corr", correlated_event_config = true })
    local dir = tmpdir()
    local lines = {}
    for i = 1, 30 do
      lines[i] = i % 3 == 0 and string.format('{"key": "k%d", "event": "corr"}', i) or string.format('{"wf_run_id": "w", "content": %d}', i)
    end
    local path = lines_file(dir, "in.jsonl", lines)
    local r = cli.run(with({ "--file", path, "--event", "ev", "--concurrency", "6", "--retries", "10" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    local retried, dup = 0, 0
    for _, res in ipairs(json_lines(r.out)) do
      assert.is_true(res.status == "stored" or res.status == "duplicate", res.status)
      if res.attempts > 1 then retried = retried + 1 end
      if res.status == "duplicate" then dup = dup + 1 end
    end
    assert.is_true(retried >= 5 and dup >= 1, "retried " .. retried .. ", duplicates " .. dup)
    local st = srv:stats()
    assert.same({ 20, 10 }, { st.events, st.correlated })
    local n = 0
    for _ in client:external_events("w") do n = n + 1 end
    assert.equal(20, n)
  end)

  it("writes lines that did not end stored to the failed file, as read; fed back in they keep their guids", function()
    local srv = start { defs = { "ev" } }
    local client = client_for(srv)
    local dir = tmpdir()
    local lines = {
      '{"wf_run_id": "w", "content": 1}',
      'not json',
      '{"wf_run_id": "w", "event": "later", "content": 2}',
      '{"wf_run_id": "w", "type": "INT", "value": "x"}',
      '{"wf_run_id": "w", "key": "k"}',
      '{"wf_run_id": "w", "guid": "a/b"}',
      '{"wf_run_id": "w", "color": "red"}',
      '{"wf_run_id": "w", "event": "later", "content": 3}',
    }
    local path = lines_file(dir, "in.jsonl", lines)
    local r = cli.run(with({ "--file", path, "--event", "ev", "--progress", "none" }, conn(srv)))
    assert.equal(3, r.status, r.err) -- rejected lines (and bad ones): 3
    local status = {}
    for _, res in ipairs(json_lines(r.out)) do status[res.line] = res.status end
    assert.same({ "stored", "bad", "rejected", "bad", "bad", "bad", "bad", "rejected" }, status)
    assert.matches("line 2: bad: not JSON", r.err)
    assert.matches("line 3: rejected: PutExternalEvent: INVALID_ARGUMENT %(3%): No ExternalEventDef named later %(1 attempt%)", r.err)
    assert.matches("line 4: bad: value: \"x\" is not a 64%-bit integer", r.err)
    assert.matches("line 5: bad: give one of", r.err)
    assert.matches("line 6: bad: guid: must not contain '/'", r.err)
    assert.matches("line 7: bad: unknown field \"color\"", r.err)
    assert.matches("7 lines written to " .. path:gsub("%p", "%%%0") .. "%.failed", r.err)
    local failed = assert(sh.read_file(path .. ".failed"))
    local expect = {}
    for _, i in ipairs { 2, 3, 4, 5, 6, 7, 8 } do expect[lines[i]] = true end
    local got = {}
    for line in failed:gmatch("[^\n]+") do got[line] = true end
    assert.same(expect, got)
    -- the def arrives; the failed file fed back in: the rejected lines go, with the same guids
    assert(client:put_external_event_def "later")
    r = cli.run(with({ "--file", path .. ".failed", "--event", "ev", "--output", "quiet", "--progress", "none" }, conn(srv)))
    assert.equal(2, r.status, r.err) -- only bad lines are left
    assert.matches(": 2 stored, 0 already stored, 0 rejected, 0 undelivered, 0 failed, 5 bad", r.err)
    for _, i in ipairs { 3, 8 } do
      assert(client:get_external_event { wf_run_id = "w", external_event_def_name = "later", guid = derived_guid(lines[i]) })
    end
  end)

  it("exits 4 when lines are undelivered; fed back in later they are stored once", function()
    local srv = start { defs = { "ev" }, args = { "--fail-next", "1000000" } }
    local dir = tmpdir()
    local lines = {}
    for i = 1, 5 do lines[i] = string.format('{"wf_run_id": "w", "content": %d}', i) end
    local path = lines_file(dir, "in.jsonl", lines)
    local failed = dir .. "/retry-later.jsonl"
    local r = cli.run(with({ "--file", path, "--event", "ev", "--retries", "1", "--failed", failed, "--output", "quiet",
                             "--progress", "none" }, conn(srv)))
    assert.equal(4, r.status, r.err)
    assert.matches(": 0 stored, 0 already stored, 0 rejected, 5 undelivered, 0 failed, 0 bad", r.err)
    assert.matches("line 1: undelivered: PutExternalEvent: UNAVAILABLE %(14%)", r.err)
    assert.equal(table.concat(lines, "\n") .. "\n", (function()
      local got = {}
      for line in assert(sh.read_file(failed)):gmatch("[^\n]+") do got[#got + 1] = line end
      table.sort(got)
      return table.concat(got, "\n") .. "\n"
    end)())
    srv.opts.args = {}
    srv:restart()
    r = cli.run(with({ "--file", failed, "--event", "ev", "--output", "quiet" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    assert.equal(5, srv:stats().events)
  end)

  it("keeps up to --concurrency calls in flight", function()
    local srv = start { defs = { "ev" }, args = { "--delay-ms", "200" } }
    local dir = tmpdir()
    local lines = {}
    for i = 1, 30 do lines[i] = string.format('{"wf_run_id": "w", "content": %d}', i) end
    local path = lines_file(dir, "in.jsonl", lines)
    -- one at a time the 30 replies take 6 s at least; 30 in flight, about 0.2 s
    local r = cli.run(with({ "--file", path, "--event", "ev", "--concurrency", "30", "--output", "quiet" }, conn(srv)))
    assert.equal(0, r.status, r.err)
    assert.is_true(r.secs < 3, string.format("%.2f s for 30 posts with 30 in flight", r.secs))
    assert.equal(30, srv:stats().events)
  end)

  it("reads standard input, and shows progress: plain lines off a terminal, a bar on one", function()
    local srv = start { defs = { "ev" } }
    local dir = tmpdir()
    local lines = {}
    for i = 1, 20 do lines[i] = string.format('{"wf_run_id": "w", "content": %d}', i) end
    local input = table.concat(lines, "\n") .. "\n"
    local r = cli.run(with({ "--file", "-", "--event", "ev", "--output", "quiet", "--failed", dir .. "/f" }, conn(srv)),
                      { stdin = input })
    assert.equal(0, r.status, r.err)
    assert.matches("lh%-put%-event: 20 lines  %d+/s  0 errors\n", r.err) -- stdin: no total known
    assert.is_nil(r.err:find("\r", 1, true))
    local path = lines_file(dir, "in.jsonl", lines)
    r = cli.run(with({ "--file", path, "--event", "ev", "--output", "quiet" }, conn(srv)))
    assert.matches("lh%-put%-event: 20/20 lines 100%%  %d+/s  0 errors\n", r.err)
    -- on a terminal (script(1) gives the command one): the bar, redrawn in place, then cleared
    local tty = dir .. "/tty.log"
    r = cli.run(with({ "--file", path, "--event", "ev", "--output", "quiet" }, conn(srv)), { wrap = function(cmd)
      return "script -qec " .. q(cmd) .. " " .. q(tty)
    end })
    assert.equal(0, r.status, r.err)
    local screen = assert(sh.read_file(tty))
    assert.matches("\r%[#+%] 20/20 lines 100%%  %d+/s  0 errors\27%[K", screen)
    assert.matches("\r%[%.+%] 0/20 lines   0%%", screen)
    assert.matches("\r\27%[Klh%-put%-event: 20 lines in [%d.]+ s", screen)
    r = cli.run(with({ "--file", path, "--event", "ev", "--progress", "bar", "--output", "quiet" }, conn(srv)))
    assert.matches("\r%[#+%] 20/20", r.err)
  end)

  it("refuses flags that do not go with --file (exit 2, nothing sent)", function()
    local srv = start { defs = { "ev" } }
    local dir = tmpdir()
    local path = lines_file(dir, "in.jsonl", { '{"wf_run_id": "w"}' })
    for _, args in ipairs {
      { "--file", path, "--wf-run-id", "w" }, { "--file", path, "--json", "1" }, { "--file", path, "--concurrency", "0" },
      { "--file", path, "--progress", "fancy" }, { "--file", path, "--output", "text" }, { "--file", dir .. "/missing" },
      { "--file", path, "extra" }, { "--wf-run-id", "w", "--event", "ev", "--concurrency", "3" },
    } do
      local r = cli.run(with(args, conn(srv)))
      assert.equal(2, r.status, table.concat(args, " ") .. ": " .. r.err)
    end
    assert.equal(0, srv:stats().put_event)
  end)
end)
