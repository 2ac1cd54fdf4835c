-- The core behaviour under every supported Lua: 5.4 and 5.3 (integer subtype), 5.1 and
-- LuaJIT (numbers are doubles). Written in Lua 5.1 syntax; scripts/suites/lua-versions.sh
-- runs this file under lua5.3, lua5.1 and luajit against builds made from the same sources.
local lh = require "littlehorse"
local devserver = require "devserver"

local DEF = "portable"

describe("on " .. (jit and jit.version or _VERSION), function()
  local srv, client
  setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 5) end)
  teardown(function() devserver.release(srv, client) end)

  it("posts an event and reads it back", function()
    local ev, err = client:put_external_event {
      wf_run_id = "p1", external_event_def_name = DEF, guid = "g1",
      content = { name = "ada", list = { 1, 2.5, "x" }, ok = true }, thread_run_number = 0 }
    assert.is_nil(err)
    assert.equal("g1", ev.id.guid)
    assert.equal("JSON_OBJ", ev.content_type)
    assert.same({ name = "ada", list = { 1, 2.5, "x" }, ok = true }, ev.content)
    assert.equal(0, ev.thread_run_number)
    assert.matches("Z$", tostring(ev.created_at))
    local got = assert(client:get_external_event(ev.id))
    assert.same(ev.content, got.content)
  end)

  it("maps scalars: integral numbers to INT, others to DOUBLE, strings, booleans, bytes", function()
    local cases = { { 42, "INT", 42 }, { 2.5, "DOUBLE", 2.5 }, { "s", "STR", "s" }, { false, "BOOL", false },
                    { lh.bytes("\0\1"), "BYTES", "\0\1" } }
    -- 2^53 is a float on 5.3+ (DOUBLE) and an integral number on 5.1/LuaJIT (INT)
    table.insert(cases, { 2 ^ 53, math.type and "DOUBLE" or "INT", 2 ^ 53 })
    for i, c in ipairs(cases) do
      local ev = assert(client:put_external_event { wf_run_id = "p2", external_event_def_name = DEF,
                                                    guid = "s" .. i, content = c[1] })
      assert.equal(c[2], ev.content_type)
      assert.equal(c[3], ev.content)
    end
  end)

  it("carries U+0000 in str content and typed values, and keeps long strings through a call", function()
    local long = string.rep("L", 700) -- anchored rather than copied while the request is packed
    local content = lh.array { "a\0b", lh.str("\0"), long, lh.struct("s", 1, { [long] = "x\0" }) }
    local ev = assert(client:put_external_event { wf_run_id = "p6", external_event_def_name = DEF,
                                                  guid = long, content = content })
    assert.equal(long, ev.id.guid)
    local items = ev.content.value
    assert.equal("a\0b", items[1])
    assert.equal("\0", items[2])
    assert.equal(long, items[3])
    assert.equal("x\0", items[4].value[long])
    local got = assert(client:get_external_event(ev.id))
    assert.same(ev.content, got.content)
  end)

  it("returns server errors as nil, err, code and raises misuse naming the field", function()
    local ev, err, code = client:put_external_event { wf_run_id = "p3", external_event_def_name = "missing" }
    assert.is_nil(ev)
    assert.equal("INVALID_ARGUMENT", code)
    assert.equal("No ExternalEventDef named missing", err.message)
    local ok, msg = pcall(function()
      return client:put_external_event { wf_run_id = "p3", external_event_def_name = DEF, content = { f = print } }
    end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'put_external_event' %(content.f: cannot encode a function as JSON%)", msg)
  end)

  it("retries with one guid and turns ALREADY_EXISTS into success", function()
    local req = { wf_run_id = "p4", external_event_def_name = DEF, guid = "same", content = 1 }
    assert(client:put_external_event(req))
    local ev, info = client:put_external_event(req, { retry = true })
    assert.is_true(info.duplicate)
    assert.equal(1, ev.content)
  end)

  it("post_event: retries by default; misuse names post_event, the nearest option and the caller's line", function()
    local ev, info = client:post_event("p6", DEF, { n = 1 }, { guid = "p6-1" })
    assert.equal(1, info.attempts)
    assert.equal(1, ev.content.n)
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, msg = pcall(function() client:post_event("p6", DEF, 1, { giud = "x" }) end)
    assert.is_false(ok)
    assert.equal("spec/portable/portable_spec.lua:" .. line
                 .. ": bad argument #4 to 'post_event' (giud: unknown option (did you mean guid?))", msg)
    ok, msg = pcall(function() client:put_external_event({ wf_run_id = "p6", external_event_def_name = DEF }, { timout = 1 }) end)
    assert.is_false(ok)
    assert.matches("timout: unknown call option %(did you mean timeout%?%)", msg)
  end)

  it("runs async calls and delivers them through poll()", function()
    local done = 0
    local handles = {}
    for i = 1, 20 do
      handles[i] = client:put_external_event_async({ wf_run_id = "p5", external_event_def_name = DEF, content = i },
        { on_done = function(e) if e then done = done + 1 end end })
    end
    local n = 0
    for _ = 1, 100 do
      n = n + client:poll(0.05)
      if n == 20 then break end
    end
    assert.equal(20, n)
    assert.equal(20, done)
    assert.equal(3, handles[3]:wait().content)
  end)

  it("closes idempotently", function()
    local c = lh.client { port = 1 }
    c:close()
    c:close()
    assert.is_true(c:is_closed())
  end)
end)
