-- bin/lh-put-event run as a real process against real dev servers: content flags, output,
-- stdin, exit codes, duplicates, configuration; and examples/post_from_shell.sh built on it.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local shell = require "sh"
local rt = require "runtime"

local CLI = "./bin/lh-put-event"
local DEF = "cli-event"

local q = shell.q

local function slurp(path) return assert(shell.read_file(path)) end

local function spit(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- A private HOME (so no ~/.config/littlehorse.config of the machine's user leaks in) and no
-- LHC_* variables from the environment unless a test sets them.
local HOME = os.tmpname()
os.remove(HOME)
assert(rt.execute("mkdir -p " .. q(HOME .. "/.config")))
local CLEAN_ENV = "env -u LHC_API_HOST -u LHC_API_PORT -u LHC_TENANT_ID -u LHC_API_PROTOCOL HOME=" .. q(HOME)

-- run(args, { env = { K = V }, stdin = "data", cmd = "..." }) -> { status =, out =, err =, secs = }
local function run(args, opts)
  opts = opts or {}
  local parts = { CLEAN_ENV }
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = opts.cmd or CLI
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  spit(inp, opts.stdin or "")
  local t0 = core.now()
  local ok, how, code = rt.execute(table.concat(parts, " ") .. " <" .. q(inp) .. " >" .. q(out) .. " 2>" .. q(err))
  local r = { secs = core.now() - t0, out = slurp(out), err = slurp(err) }
  r.status = how == "exit" and code or 128 + code
  os.remove(out); os.remove(err); os.remove(inp)
  assert(ok ~= nil or how, "os.execute failed")
  return r
end

local function event_of(r)
  assert.equal(0, r.status, "exit " .. r.status .. ": " .. r.err)
  local ev, err = lh.json_decode(r.out)
  assert.is_table(ev, "stdout is not JSON: " .. tostring(err) .. ": " .. r.out)
  return ev
end

describe("lh-put-event", function()
  local srv, client, conn
  local n = 0
  local function wf() n = n + 1; return "cli-wf-" .. n end

  lazy_setup(function()
    srv, client = devserver.with_client({ defs = { DEF, "other-event" } }, 5)
    conn = { "--host", "127.0.0.1", "--port", tostring(srv.port) }
  end)
  lazy_teardown(function()
    devserver.release(srv, client)
    rt.execute("rm -rf " .. q(HOME))
  end)

  -- post(args...) with the dev server's address appended
  local function post(args, opts)
    local a = {}
    for _, v in ipairs(args) do a[#a + 1] = v end
    for _, v in ipairs(conn) do a[#a + 1] = v end
    return run(a, opts)
  end

  local function stored(id, guid, def)
    local ev, err = client:get_external_event { wf_run_id = id, external_event_def_name = def or DEF, guid = guid }
    assert.is_table(ev, tostring(err))
    return ev
  end

  describe("--help and --version", function()
    it("prints the usage with every flag and the exit codes, and exits 0", function()
      local r = run { "--help" }
      assert.equal(0, r.status)
      assert.equal("", r.err)
      assert.matches("^Usage: lh%-put%-event %-%-wf%-run%-id ID %-%-event NAME", r.out)
      for _, flag in ipairs { "--guid", "--retries", "--timeout", "--json", "--str", "--int", "--double",
                              "--bool", "--bytes-file", "--bytes-base64", "--timestamp", "--null",
                              "--type", "--thread-run-number", "--node-run-position", "--host", "--port",
                              "--tenant", "--output", "--config-file", "LHC_API_HOST", "LHC_TENANT_ID" } do
        assert.truthy(r.out:find(flag, 1, true), flag .. " missing from --help")
      end
      for code = 0, 4 do assert.matches("\n  " .. code .. "  ", r.out) end
      assert.equal(r.out, run({ "-h" }).out)
    end)

    it("prints the version", function()
      local r = run { "--version" }
      assert.equal(0, r.status)
      assert.equal("lh-put-event " .. lh.version .. " (littlehorse-client, Lua 5.4)\n", r.out)
    end)
  end)

  describe("content", function()
    it("--json object: JSON_OBJ, stored as given, output parsed back", function()
      local id = wf()
      local ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--json", '{"a":1,"b":[true,null,2.5],"big":9007199254740993}' })
      assert.equal("JSON_OBJ", ev.content_type)
      assert.equal(1, ev.content.a)
      rt.check_int(ev.content.big, "9007199254740993")
      assert.equal(lh.null, ev.content.b[2])
      assert.equal(id, ev.wf_run_id)
      assert.equal(id, ev.id.wf_run_id.id)
      assert.equal(DEF, ev.external_event_def_name)
      assert.equal(DEF, ev.id.external_event_def_id.name)
      assert.matches("^%x+$", ev.guid)
      assert.equal(ev.guid, ev.id.guid)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*Z$", ev.created_at)
      assert.is_false(ev.duplicate)
      assert.equal(1, ev.attempts)
      assert.equal(lh.null, ev.thread_run_number)
      assert.is_false(ev.claimed)
      local s = stored(id, ev.guid)
      assert.equal("JSON_OBJ", s.content_type)
      rt.check_int(s.content.big, "9007199254740993")
      assert.equal(tostring(s.created_at), ev.created_at)
    end)

    it("--json array and scalars: JSON_ARR, INT, DOUBLE, STR, BOOL, NULL", function()
      local cases = {
        { '[1,"two",{"x":3}]', "JSON_ARR", function(c) assert.equal("two", c[2]); assert.equal(3, c[3].x) end },
        { "42", "INT", function(c) rt.check_int(c, "42") end },
        { "2.5", "DOUBLE", function(c) assert.equal(2.5, c) end },
        { '"hi"', "STR", function(c) assert.equal("hi", c) end },
        { "false", "BOOL", function(c) assert.is_false(c) end },
      }
      for _, case in ipairs(cases) do
        local id = wf()
        local ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--json", case[1] })
        assert.equal(case[2], ev.content_type, case[1])
        case[3](ev.content)
        assert.equal(case[2], stored(id, ev.guid).content_type)
      end
      local id = wf()
      local ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--json", "null" })
      assert.equal(lh.null, ev.content_type)
      assert.equal(lh.null, ev.content)
      assert.is_nil(stored(id, ev.guid).content_type)
    end)

    it("--str, --int, --double, --bool, --null and no content", function()
      local cases = {
        { { "--str", "héllo, wörld" }, "STR", "héllo, wörld" },
        { { "--str", "42" }, "STR", "42" },
        { { "--int", "-9223372036854775808" }, "INT", rt.MININT },
        { { "--int", "9223372036854775807" }, "INT", rt.MAXINT },
        { { "--double", "1e300" }, "DOUBLE", 1e300 },
        { { "--double", "3" }, "DOUBLE", 3.0 },
        { { "--bool", "true" }, "BOOL", true },
        { { "--bool", "F" }, "BOOL", false },
      }
      for _, case in ipairs(cases) do
        local id = wf()
        local args = { "--wf-run-id", id, "--event", DEF, case[1][1], case[1][2] }
        local ev = event_of(post(args))
        assert.equal(case[2], ev.content_type, case[1][1] .. " " .. case[1][2])
        assert.same(case[3], ev.content)
        local s = stored(id, ev.guid)
        assert.equal(case[2], s.content_type)
        assert.same(case[3], s.content)
        if case[2] == "DOUBLE" and rt.subtype then assert.equal("float", math.type(s.content)) end
      end
      for _, extra in ipairs { { "--null" }, {} } do
        local id = wf()
        local args = { "--wf-run-id", id, "--event", DEF }
        for _, e in ipairs(extra) do args[#args + 1] = e end
        local ev = event_of(post(args))
        assert.equal(lh.null, ev.content_type)
        assert.is_nil(stored(id, ev.guid).content)
      end
    end)

    it("--double nan and inf are stored and printed as protobuf JSON prints them", function()
      local id = wf()
      local ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--double", "-inf" })
      assert.equal("-Infinity", ev.content)
      assert.equal(-math.huge, stored(id, ev.guid).content)
      ev = event_of(post { "--wf-run-id", wf(), "--event", DEF, "--double", "nan" })
      assert.equal("NaN", ev.content)
    end)

    it("--bytes-file sends the file's exact bytes; output is base64", function()
      local path = os.tmpname()
      local data = "\0\1\2\255binary\r\n\0"
      spit(path, data)
      local id = wf()
      local ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--bytes-file", path })
      os.remove(path)
      assert.equal("BYTES", ev.content_type)
      assert.equal("AAEC/2JpbmFyeQ0KAA==", ev.content)
      assert.equal(data, stored(id, ev.guid).content)
    end)

    it("--bytes-base64 and lhctl's BYTES payload take base64, padded or not", function()
      for _, args in ipairs { { "--bytes-base64", "AAEC/w==" }, { "--bytes-base64", "AAEC/w" },
                              { "--type", "BYTES", "--value", "AAEC/w" } } do
        local id = wf()
        local a = { "--wf-run-id", id, "--event", DEF }
        for _, v in ipairs(args) do a[#a + 1] = v end
        local ev = event_of(post(a))
        assert.equal("BYTES", ev.content_type)
        assert.equal("\0\1\2\255", stored(id, ev.guid).content)
      end
      local r = post { "--wf-run-id", wf(), "--event", DEF, "--bytes-base64", "AA*C" }
      assert.equal(2, r.status)
      assert.matches("invalid base64", r.err)
    end)

    it("--timestamp takes RFC 3339 or epoch milliseconds (as lhctl)", function()
      local id = wf()
      local ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--timestamp", "2024-05-01T12:00:00.250+02:00" })
      assert.equal("TIMESTAMP", ev.content_type)
      assert.equal("2024-05-01T10:00:00.250Z", ev.content)
      local s = stored(id, ev.guid).content
      assert.same({ 1714557600, 250000000 }, { s.seconds, s.nanos })
      id = wf()
      ev = event_of(post { "--wf-run-id", id, "--event", DEF, "--timestamp", "1700000000123" })
      s = stored(id, ev.guid).content
      assert.same({ 1700000000, 123000000 }, { s.seconds, s.nanos })
    end)

    it("accepts lhctl's <varType> <payload>: positionally and as --type/--value, any case", function()
      local cases = {
        { "JSON_OBJ", '{"k":"v"}', "JSON_OBJ" }, { "JSON_ARR", "[1]", "JSON_ARR" }, { "STR", "x y", "STR" },
        { "INT", "-7", "INT" }, { "DOUBLE", "0.5", "DOUBLE" }, { "BOOL", "1", "BOOL" },
        { "TIMESTAMP", "2024-01-01T00:00:00Z", "TIMESTAMP" }, { "WF_RUN_ID", "parent_child", "WF_RUN_ID" },
        { "int", "5", "INT" }, { "Str", "s", "STR" },
      }
      for i, case in ipairs(cases) do
        local id = wf()
        local args = i % 2 == 0 and { id, DEF, case[1], case[2] }
                                 or { "--wf-run-id", id, "--event", DEF, "--type", case[1], "--value", case[2] }
        local ev = event_of(post(args))
        assert.equal(case[3], ev.content_type, case[1])
        assert.equal(case[3], stored(id, ev.guid).content_type)
      end
      local ev = event_of(post { wf(), DEF, "WF_RUN_ID", "parent_child" })
      assert.equal("parent_child", ev.content)
      -- the lhctl form with only ID and NAME posts NULL content
      ev = event_of(post { wf(), DEF })
      assert.equal(lh.null, ev.content_type)
    end)

    it("refuses a JSON_OBJ payload that is not an object, and an unknown type", function()
      local r = post { wf(), DEF, "JSON_OBJ", "[1]" }
      assert.equal(2, r.status)
      assert.matches("JSON_OBJ needs a JSON object", r.err)
      r = post { wf(), DEF, "FLOAT", "1" }
      assert.equal(2, r.status)
      assert.matches('unrecognized type "FLOAT"', r.err)
    end)
  end)

  describe("standard input", function()
    it("--json - reads the JSON from stdin", function()
      local id = wf()
      local ev = event_of(post({ "--wf-run-id", id, "--event", DEF, "--json", "-" }, { stdin = '{\n  "from": "stdin"\n}\n' }))
      assert.equal("JSON_OBJ", ev.content_type)
      assert.equal("stdin", stored(id, ev.guid).content.from)
    end)

    it("--str - reads the text, dropping one trailing newline", function()
      local id = wf()
      local ev = event_of(post({ "--wf-run-id", id, "--event", DEF, "--str", "-" }, { stdin = "line one\nline two\n" }))
      assert.equal("line one\nline two", stored(id, ev.guid).content)
    end)

    it("--bytes-file - reads the exact bytes", function()
      local id = wf()
      local ev = event_of(post({ "--wf-run-id", id, "--event", DEF, "--bytes-file", "-" }, { stdin = "\0\255\n" }))
      assert.equal("\0\255\n", stored(id, ev.guid).content)
    end)
  end)

  describe("targeting", function()
    it("a child WfRun as PARENT_CHILD, the guid, and thread/node numbers (lhctl's flag names too)", function()
      local ev = event_of(post { "--wf-run-id", "parent_kid", "--event", DEF, "--guid", "my-guid-1",
                                 "--thread-run-number", "2", "--node-run-position", "7", "--int", "1" })
      assert.equal("parent_kid", ev.wf_run_id)
      assert.same({ id = "kid", parent_wf_run_id = { id = "parent" } }, ev.id.wf_run_id)
      assert.equal("my-guid-1", ev.guid)
      assert.equal(2, ev.thread_run_number)
      assert.equal(7, ev.node_run_position)
      local s = stored({ id = "kid", parent_wf_run_id = { id = "parent" } }, "my-guid-1")
      assert.equal(2, s.thread_run_number)
      ev = event_of(post { "--wf-run-id", wf(), "--event", DEF, "--threadRunNumber", "1", "--nodeRunNumber=3" })
      assert.same({ 1, 3 }, { ev.thread_run_number, ev.node_run_position })
    end)
  end)

  describe("output formats", function()
    it("--output text is for people and says so when the guid was a duplicate", function()
      local id = wf()
      local r = post { "--wf-run-id", id, "--event", DEF, "--str", "t", "--guid", "text-guid", "--output", "text" }
      assert.equal(0, r.status)
      assert.matches("^stored:\n", r.out)
      assert.matches("\n  guid +text%-guid\n", r.out)
      assert.matches("\n  content_type +STR\n", r.out)
      r = post { "--wf-run-id", id, "--event", DEF, "--str", "t", "--guid", "text-guid", "--output", "text" }
      assert.equal(0, r.status)
      assert.matches("^already stored %(duplicate guid", r.out)
    end)

    it("--output quiet prints nothing", function()
      local id = wf()
      local r = post { "--wf-run-id", id, "--event", DEF, "--int", "3", "--guid", "quiet-guid", "--output", "quiet" }
      assert.equal(0, r.status)
      assert.equal("", r.out)
      assert.equal("", r.err)
      assert.equal(3, stored(id, "quiet-guid").content)
    end)

    it("--output lhctl prints the ExternalEvent as protobuf JSON, like lhctl", function()
      local id = wf()
      local r = post { "--wf-run-id", id, "--event", DEF, "--int", "12", "--guid", "pj", "--output", "lhctl" }
      assert.equal(0, r.status)
      local pj = lh.json_decode(r.out)
      assert.same({ id = id, parentWfRunId = lh.null }, pj.id.wfRunId)
      assert.same({ name = DEF }, pj.id.externalEventDefId)
      assert.equal("pj", pj.id.guid)
      assert.same({ int = "12" }, pj.content)  -- int64 is a string in protobuf JSON
      assert.is_false(pj.claimed)
      assert.is_string(pj.createdAt)
      assert.matches('^{\n  "id": {\n    "wfRunId"', r.out)
      -- a duplicate is said on stderr (protobuf JSON has no place for it)
      r = post { "--wf-run-id", id, "--event", DEF, "--int", "12", "--guid", "pj", "--output", "lhctl" }
      assert.equal(0, r.status)
      assert.matches("duplicate", r.err)
      local obj = lh.json_decode(post({ "--wf-run-id", wf(), "--event", DEF, "--json", '{"a":1}', "--output", "lhctl" }).out)
      assert.same({ a = 1 }, lh.json_decode(obj.content.jsonObj))
    end)
  end)

  describe("exit codes", function()
    it("0 with duplicate noted when the guid was already stored; the first content is kept", function()
      local id = wf()
      local first = event_of(post { "--wf-run-id", id, "--event", DEF, "--str", "first", "--guid", "dup-1" })
      assert.is_false(first.duplicate)
      local again = event_of(post { "--wf-run-id", id, "--event", DEF, "--str", "second", "--guid", "dup-1" })
      assert.is_true(again.duplicate)
      assert.equal("first", again.content)
      assert.equal(first.created_at, again.created_at)
      assert.equal("first", stored(id, "dup-1").content)
    end)

    it("2 for usage errors, with nothing sent", function()
      local bad = {
        { {}, "missing %-%-wf%-run%-id" },
        { { "--wf-run-id", "w" }, "missing %-%-event" },
        { { "--wf-run-id", "w", "--event", DEF, "--frobnicate" }, "unknown option %-%-frobnicate" },
        { { "--wf-run-id", "w", "--event", DEF, "--str", "a", "--int", "1" }, "at most one content option" },
        { { "--wf-run-id", "w", "--event", DEF, "--int", "1.5" }, "not a 64%-bit integer" },
        { { "--wf-run-id", "w", "--event", DEF, "--int", "9223372036854775808" }, "not a 64%-bit integer" },
        { { "--wf-run-id", "w", "--event", DEF, "--bool", "yes" }, "not a boolean" },
        { { "--wf-run-id", "w", "--event", DEF, "--json", "{nope" }, "invalid JSON" },
        { { "--wf-run-id", "w", "--event", DEF, "--timestamp", "yesterday" }, "neither RFC 3339" },
        { { "--wf-run-id", "w", "--event", DEF, "--bytes-file", "/nonexistent/file" }, "No such file" },
        { { "--wf-run-id", "w", "--event", DEF, "--str", "\255" }, "invalid UTF%-8.*%-%-bytes%-file" },
        { { "--wf-run-id", "w", "--event", DEF, "--guid", "a/b" }, "guid: must not contain '/'" },
        { { "--wf-run-id", "w", "--event", DEF, "--node-run-position", "1" }, "needs %-%-thread%-run%-number" },
        { { "--wf-run-id", "w", "--event", DEF, "--retries", "-1" }, "out of range" },
        { { "--wf-run-id", "w", "--event", DEF, "--timeout", "0" }, "positive number" },
        { { "--wf-run-id", "w", "--event", DEF, "--output", "xml" }, "expected json, text, quiet or lhctl" },
        { { "--wf-run-id", "a__b", "--event", DEF }, "bad WfRunId" },
        { { "w", DEF, "INT" }, "requires 2 or 4 arguments" },
        { { "--value", "1", "--wf-run-id", "w", "--event", DEF }, "%-%-value needs %-%-type" },
        { { "--wf-run-id", "w", "--event", DEF, "--str" }, "needs a value", run },
      }
      for _, case in ipairs(bad) do
        local r = (case[3] or post)(case[1])
        assert.equal(2, r.status, table.concat(case[1], " ") .. " -> " .. r.err)
        assert.matches(case[2], r.err)
        assert.matches("Try 'lh%-put%-event %-%-help'", r.err)
        assert.equal("", r.out)
      end
    end)

    it("2 for a bad LHC_* setting; TLS is spoken (here to a plaintext server: unavailable, 4)", function()
      local r = run({ "--wf-run-id", "w", "--event", DEF }, { env = { LHC_API_PORT = "http" } })
      assert.equal(2, r.status)
      assert.matches("LHC_API_PORT", r.err)
      r = run({ "--wf-run-id", "w", "--event", DEF }, { env = { LHC_API_PROTOCOL = "SSL" } })
      assert.equal(2, r.status)
      assert.matches("^lh%-put%-event: littlehorse: LHC_API_PROTOCOL=SSL %(from the environment%): expected PLAINTEXT or TLS", r.err)
      r = run({ "--wf-run-id", "w", "--event", DEF, "--host", "h:2023" })
      assert.equal(2, r.status)
      assert.matches("^lh%-put%-event: bad argument #1 to 'client' %(host: \"h:2023\" includes a port", r.err)
      r = run({ "--wf-run-id", "w", "--event", DEF, "--retries", "0", "--timeout", "2" },
              { env = { LHC_API_PROTOCOL = "TLS" } })
      assert.equal(4, r.status)
    end)

    it("2 for an event too large to send (refused before sending: RESOURCE_EXHAUSTED), tried once", function()
      local big = os.tmpname()
      spit(big, string.rep("x", 5 * 1024 * 1024))
      local r = post { "--wf-run-id", wf(), "--event", DEF, "--bytes-file", big, "--retries", "3" }
      os.remove(big)
      assert.equal(2, r.status, r.err)
      assert.equal("", r.out)
      assert.matches("RESOURCE_EXHAUSTED %(8%): the request is %d+ bytes, larger than the 4194304%-byte limit "
                     .. "%(max_send_size%); nothing was sent %(1 attempt; guid %x+%)", r.err)
      assert.is_nil(r.err:find("rerun with", 1, true))
    end)

    it("3 when the server rejects the event (unknown ExternalEventDef), without retrying", function()
      local r = post { "--wf-run-id", wf(), "--event", "no-such-def", "--json", "{}", "--retries", "5" }
      assert.equal(3, r.status)
      assert.equal("", r.out)
      assert.matches("INVALID_ARGUMENT %(3%): No ExternalEventDef named no%-such%-def %(1 attempt; guid %x+%)", r.err)
    end)

    it("4 fast when the server is down, with --retries 0 and a short timeout, naming the guid", function()
      local down = devserver.start { defs = { DEF } }
      local port = down.port
      down:stop()
      local r = run { "--wf-run-id", "w", "--event", DEF, "--str", "x", "--host", "127.0.0.1",
                      "--port", tostring(port), "--retries", "0", "--timeout", "0.5", "--guid", "retry-me" }
      assert.equal(4, r.status)
      assert.equal("", r.out)
      assert.matches("UNAVAILABLE", r.err)
      assert.matches("rerun with %-%-guid retry%-me", r.err)
      assert.is_true(r.secs < 5, "took " .. r.secs .. " s")
    end)

    it("4 after all retries, each one reported with --verbose", function()
      local r = run { "--wf-run-id", "w", "--event", DEF, "--host", "127.0.0.1", "--port", "1",
                      "--retries", "2", "--timeout", "0.5", "-v" }
      assert.equal(4, r.status)
      assert.matches("%(3 attempts; guid %x+%)", r.err)
      local _, retries = r.err:gsub("attempt %d failed", "")
      assert.equal(2, retries)
    end)
  end)

  describe("configuration", function()
    it("uses LHC_API_HOST / LHC_API_PORT like the library", function()
      local id = wf()
      local r = run({ "--wf-run-id", id, "--event", DEF, "--str", "env" },
                    { env = { LHC_API_HOST = "127.0.0.1", LHC_API_PORT = tostring(srv.port) } })
      assert.equal("env", stored(id, event_of(r).guid).content)
    end)

    it("flags win over LHC_* variables", function()
      local id = wf()
      local r = run({ "--wf-run-id", id, "--event", DEF, "--port", tostring(srv.port), "--host", "127.0.0.1" },
                    { env = { LHC_API_HOST = "127.0.0.1", LHC_API_PORT = "1" } })
      event_of(r)
    end)

    it("reads --config-file (lhctl's --configFile) and ~/.config/littlehorse.config; variables win", function()
      local file = os.tmpname()
      spit(file, "# lhctl config\nLHC_API_HOST=127.0.0.1\nLHC_API_PORT = " .. srv.port .. "\n")
      event_of(run { "--wf-run-id", wf(), "--event", DEF, "--config-file", file })
      event_of(run { "--wf-run-id", wf(), "--event", DEF, "--configFile=" .. file })
      local r = run({ "--wf-run-id", wf(), "--event", DEF, "--config-file", file, "--retries", "0", "--timeout", "0.5" },
                    { env = { LHC_API_PORT = "1" } })
      assert.equal(4, r.status)
      spit(HOME .. "/.config/littlehorse.config", "LHC_API_HOST: 127.0.0.1\nLHC_API_PORT " .. srv.port .. "\n")
      event_of(run { "--wf-run-id", wf(), "--event", DEF })
      os.remove(HOME .. "/.config/littlehorse.config")
      r = run { "--wf-run-id", "w", "--event", DEF, "--config-file", "/nonexistent/lh.config" }
      assert.equal(2, r.status)
      os.remove(file)
    end)
  end)

  describe("as installed by the rockspec", function()
    it("is a Lua 5.4 script that finds the module from a checkout", function()
      local f = assert(io.open(CLI))
      assert.equal("#!/usr/bin/env lua5.4", f:read("*l"))
      f:close()
      local spec = slurp("littlehorse-client-0.1.0-1.rockspec")
      assert.truthy(spec:find('["lh-put-event"] = "bin/lh-put-event"', 1, true))
    end)

    it("runs from the tree `make build` installs it into, from any directory", function()
      local pwd = io.popen("pwd")
      local installed = pwd:read("*l") .. "/lua_modules/bin/lh-put-event"
      pwd:close()
      local from_root = "sh -c 'cd / && exec \"$0\" \"$@\"' " .. q(installed)
      local r = run({ "--version" }, { cmd = from_root })
      assert.equal(0, r.status, r.err)
      assert.matches("^lh%-put%-event " .. lh.version:gsub("%p", "%%%0"), r.out)
      local id = wf()
      r = run({ "--wf-run-id", id, "--event", DEF, "--int", "5", "--host", "127.0.0.1", "--port", tostring(srv.port) },
              { cmd = from_root })
      assert.equal(5, stored(id, event_of(r).guid).content)
    end)
  end)
end)

describe("examples/post_from_shell.sh", function()
  local srv
  lazy_setup(function() srv = devserver.start { defs = { "order-approved" } } end)
  lazy_teardown(function() srv:stop() end)

  local function sh(args, stdin, env)
    local e = { LHC_API_HOST = "127.0.0.1", LHC_API_PORT = tostring(srv.port), LH_PUT_EVENT = CLI,
                ROUND_PAUSE = "0.1" }
    for k, v in pairs(env or {}) do e[k] = v end
    return run(args, { cmd = "sh examples/post_from_shell.sh", stdin = stdin, env = e })
  end

  local batch = '# orders\norder-1,{"approved":true,"note":"a, b"}\norder-2,42\n\norder-3,{bad\n'

  it("posts each line, reports bad lines, and a rerun stores nothing twice", function()
    local r = sh({ "order-approved" }, batch)
    assert.equal(3, r.status, r.err)  -- one bad line
    assert.matches("summary: 2 stored, 0 already stored, 0 rejected, 1 failed, 0 undelivered", r.out)
    assert.matches("failed %(exit 2%): order%-3", r.err)
    r = sh({ "order-approved" }, batch)
    assert.matches("summary: 0 stored, 2 already stored, 0 rejected, 1 failed, 0 undelivered", r.out)
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    local guid = r.out:match("already stored: order%-1 %(guid (%x+)%)")
    local ev = assert(c:get_external_event { wf_run_id = "order-1", external_event_def_name = "order-approved", guid = guid })
    c:close()
    assert.equal("a, b", ev.content.note)
    r = sh({ "order-approved" }, 'order-4,{"approved":false}\n')
    assert.equal(0, r.status)
  end)

  it("exits 3 when the server rejects lines and 4 when it stays unreachable", function()
    local r = sh({ "no-such-def" }, "order-1,1\n")
    assert.equal(3, r.status)
    assert.matches("rejected: order%-1: .*INVALID_ARGUMENT", r.err)
    r = sh({ "order-approved" }, "order-9,1\n", { LHC_API_PORT = "1", RETRIES = "0", TIMEOUT = "0.5", ROUNDS = "2" })
    assert.equal(4, r.status)
    assert.matches("undelivered after 2 rounds", r.err)
    assert.matches("1 undelivered", r.out)
  end)
end)

-- How many events with this guid the server holds under ob-wf (0 or 1).
local function stored_once(client, guid)
  return client:get_external_event { wf_run_id = "ob-wf", external_event_def_name = DEF, guid = guid } and 1 or 0
end

describe("lh-put-event --outbox", function()
  local srv, client, dir
  lazy_setup(function()
    srv, client = devserver.with_client({ defs = { DEF } }, 5)
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
  end)
  lazy_teardown(function()
    devserver.release(srv, client)
    os.execute("rm -rf " .. q(dir))
  end)

  it("stores without sending, then --deliver sends each once; --stats, --dead-letters, --requeue, --purge", function()
    local path = dir .. "/cli.db"
    local r = run { "--outbox", path, "--wf-run-id", "ob-wf", "--event", DEF, "--json", '{"n":1}' }
    local out = event_of(r)
    assert.is_true(out.durable)
    local guid = out.guid
    assert.equal(0, srv:stats().events) -- stored in the file, nothing sent
    r = run { "--outbox", path, "--wf-run-id", "ob-wf", "--event", "no-such-def", "--str", "x", "--guid", "bad-1" }
    assert.equal("bad-1", event_of(r).guid)
    local st = event_of(run { "--outbox", path, "--stats" })
    assert.same({ 2, 2 }, { st.accepted, st.pending })
    -- unreachable: pending stays, exit 4
    r = run { "--outbox", path, "--deliver", "--port", "1", "--for", "0.3" }
    assert.equal(4, r.status, r.err)
    assert.equal(2, lh.json_decode(r.out).pending)
    r = run { "--outbox", path, "--deliver", "--host", "127.0.0.1", "--port", tostring(srv.port) }
    assert.same({ delivered = 1, dead = 1, pending = 0 }, (function(c) return { delivered = c.delivered, dead = c.dead,
      pending = c.pending } end)(event_of(r)))
    assert.equal(1, stored_once(client, guid))
    local dead = event_of(run { "--outbox", path, "--dead-letters" })
    assert.equal("bad-1", dead.guid)
    assert.equal("INVALID_ARGUMENT", dead.last_code)
    r = run { "--outbox", path, "--requeue", tostring(dead.id) }
    assert.equal("requeued 1\n", r.out)
    r = run { "--outbox", path, "--purge", "all" }
    assert.equal("purged 0\n", r.out) -- requeued: not a dead letter any more
    assert.equal(1, event_of(run { "--outbox", path, "--stats" }).pending)
  end)

  it("stores a CorrelatedEvent with --key (and the lhctl form); --deliver sends it by its key, once", function()
    assert(client:put_external_event_def { name = "ob-paid", correlated_event_config = true })
    assert(client:put_correlated_event { key = "ob-taken", external_event_def_name = "ob-paid", content = "first" })
    local path = dir .. "/corr.db"
    local r = run { "--outbox", path, "--key", "ob-k1", "--event", "ob-paid", "--json", '{"n":1}' }
    assert.equal(0, r.status, r.err)
    assert.same({ key = "ob-k1", outbox = path, durable = true }, event_of(r))
    r = run { "--outbox", path, "put", "correlatedEvent", "ob-taken", "ob-paid", "STR", "second", "--output", "text" }
    assert.equal(0, r.status, r.err)
    assert.equal("stored in the outbox " .. path .. " (delivered by --deliver):\n  key ob-taken\n", r.out)
    r = run { "--outbox", path, "--key", "ob-bad", "--event", "no-such-def", "--int", "3" }
    assert.equal(0, r.status, r.err)
    r = run { "--outbox", path, "--key", "a/b", "--event", "ob-paid" }
    assert.equal(2, r.status)
    assert.matches("key: must not contain '/'", r.err)
    r = run { "--outbox", path, "--key", "ob-k2", "--event", "ob-paid", "--guid", "g" }
    assert.equal(2, r.status)
    assert.matches("%-%-guid: a CorrelatedEvent has none", r.err)
    assert.equal(1, srv:stats().correlated) -- only the one put above: nothing sent yet
    r = run { "--outbox", path, "--deliver", "--host", "127.0.0.1", "--port", tostring(srv.port) }
    local c = event_of(r)
    assert.same({ 1, 1, 1, 0 }, { c.delivered, c.duplicates, c.dead, c.pending })
    assert.equal(1, assert(client:get_correlated_event { key = "ob-k1", external_event_def_name = "ob-paid" }).content.n)
    assert.equal("first", assert(client:get_correlated_event { key = "ob-taken", external_event_def_name = "ob-paid" }).content)
    local dead = event_of(run { "--outbox", path, "--dead-letters" })
    assert.same({ "correlated", "ob-bad", "no-such-def", "INVALID_ARGUMENT" },
                { dead.kind, dead.key, dead.external_event_def_name, dead.last_code })
  end)

  it("refuses misuse with exit 2, and says why a file cannot be used", function()
    local r = run { "--stats" }
    assert.equal(2, r.status)
    assert.matches("need %-%-outbox PATH", r.err)
    r = run { "--outbox", dir .. "/x.db", "--stats", "--deliver" }
    assert.equal(2, r.status)
    r = run { "--outbox", dir .. "/x.db", "--wf-run-id", "w", "--event", DEF, "--port", "3" }
    assert.equal(2, r.status)
    assert.matches("nothing is sent with %-%-outbox", r.err)
    r = run { "--outbox", dir .. "/no/such/dir/x.db", "--wf-run-id", "w", "--event", DEF }
    assert.equal(1, r.status)
    assert.matches("directory exists", r.err)
  end)
end)
