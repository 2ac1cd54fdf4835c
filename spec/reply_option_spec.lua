-- The `reply = false` call option: success is `true` and the reply message is not decoded
-- (a post whose stored event nobody reads); failures are unchanged. Against the dev server.
local lh = require "littlehorse"
local devserver = require "devserver"
local rt = require "runtime"

local DEF = "reply-event"
local TOKEN = "reply-spec-token"

describe("reply = false", function()
  local srv, client

  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local function req(guid, content)
    return { wf_run_id = "wf-reply", external_event_def_name = DEF, guid = guid, content = content }
  end
  local function stored(guid)
    local ev = client:get_external_event { wf_run_id = "wf-reply", external_event_def_name = DEF, guid = guid }
    return ev and ev.content
  end

  it("makes a blocking put return true, and the event is stored", function()
    local ok, err, code = client:put_external_event(req("sync-1", { n = 1 }), { reply = false })
    assert.is_true(ok)
    assert.is_nil(err)
    assert.is_nil(code)
    assert.are.same({ n = 1 }, stored("sync-1"))
  end)

  it("makes an async put's wait() and on_done get true", function()
    local h = client:put_external_event_async(req("async-1", { n = 2 }), { reply = false })
    assert.is_true(h:wait(5))
    assert.is_true(h:wait()) -- settled: the same again
    local got
    client:put_external_event_async(req("async-2", { n = 3 }), { reply = false, on_done = function(...) got = rt.pack(...) end })
    local deadline = lh.core.now() + 5
    while not got and lh.core.now() < deadline do client:poll(0.1) end
    assert.are.same({ n = 1, true }, got)
    assert.are.same({ n = 2 }, stored("async-1"))
    assert.are.same({ n = 3 }, stored("async-2"))
  end)

  it("keeps failures as they are: nil, err, code", function()
    local ok, err, code = client:put_external_event(
      { wf_run_id = "wf-reply", external_event_def_name = "no-such-def", content = 1 }, { reply = false })
    assert.is_nil(ok)
    assert.equal(code, err.code)
    assert.is_string(code)
    assert.are_not.equal("OK", code)
    local h = client:put_external_event_async({ wf_run_id = "wf-reply", external_event_def_name = "no-such-def" }, { reply = false })
    local ok2, err2, code2 = h:wait(5)
    assert.is_nil(ok2)
    assert.equal(code, code2)
    assert.equal(code2, err2.code)
  end)

  it("turns get_external_event into an existence check", function()
    client:put_external_event(req("exists-1", "x"))
    assert.is_true(client:get_external_event({ wf_run_id = "wf-reply", external_event_def_name = DEF, guid = "exists-1" }, { reply = false }))
    local ok, _, code = client:get_external_event({ wf_run_id = "wf-reply", external_event_def_name = DEF, guid = "nope" }, { reply = false })
    assert.is_nil(ok)
    assert.equal("NOT_FOUND", code)
  end)

  it("with retries, answers a duplicate (ALREADY_EXISTS) with true without fetching it", function()
    assert.is_true(client:put_external_event(req("dup-1", { n = 4 }), { reply = false, retry = true }))
    local ok, info = client:put_external_event(req("dup-1", { n = 4 }), { reply = false, retry = true })
    assert.is_true(ok)
    assert.is_true(info.duplicate)
    assert.equal("dup-1", info.guid)
    -- and post_event passes it on
    assert.is_true(client:post_event("wf-reply", DEF, { n = 5 }, { guid = "dup-2", reply = false }))
    assert.are.same({ n = 5 }, stored("dup-2"))
  end)

  it("refuses anything but a boolean, naming the option", function()
    assert.has_error(function() client:put_external_event(req("bad-1", 1), { reply = "no" }) end,
      "bad argument #2 to 'put_external_event' (reply: expected a boolean (false: success returns true, the reply is not decoded))")
    assert.has_error(function() client:put_external_event_async(req("bad-2", 1), { reply = 0 }) end)
    assert.is_nil(stored("bad-1"))
  end)

  it("reply = true is the default: the stored event as a table", function()
    local ev = client:put_external_event(req("table-1", { n = 6 }), { reply = true })
    assert.are.same({ n = 6 }, ev.content)
  end)
end)

describe("call options with retries", function()
  it("send the caller's metadata on every attempt (here: the token a server requires)", function()
    local srv = devserver.start { defs = { DEF }, args = { "--require-token", TOKEN } }
    local client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5 }
    finally(function() client:close(); srv:stop() end)
    local md = { metadata = { authorization = "Bearer " .. TOKEN } }
    local ev, err = client:put_external_event(
      { wf_run_id = "wf-md", external_event_def_name = DEF, guid = "md-1", content = 1 },
      { metadata = md.metadata, retry = true })
    assert(ev, tostring(err))
    local again, info = client:put_external_event(
      { wf_run_id = "wf-md", external_event_def_name = DEF, guid = "md-1", content = 1 },
      { metadata = md.metadata, retry = true })
    assert.equal(1, again and again.content, tostring(info))
    assert.is_true(info.duplicate)
    local _, _, code = client:put_external_event(
      { wf_run_id = "wf-md", external_event_def_name = DEF, guid = "md-2", content = 1 }, { retry = true })
    assert.equal("UNAUTHENTICATED", code)
  end)
end)
