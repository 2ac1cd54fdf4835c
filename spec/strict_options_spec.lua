-- Every options table is checked for unknown keys, like lh.client{} and request fields: call
-- options, post_event options, retry options and retry_on names, and `retry` where it does not
-- apply. Each error names the key and the nearest valid one, and nothing is sent.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"

local DEF = "strict"

describe("strict options", function()
  local srv, client
  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local n = 0
  local function req()
    n = n + 1
    return { wf_run_id = "strict-" .. n, external_event_def_name = DEF, content = n }
  end

  -- fn must raise an error containing every one of the plain-text pieces
  local function raises(fn, ...)
    local ok, err = pcall(fn)
    assert.is_false(ok, "expected an error")
    assert.is_string(err)
    for _, piece in ipairs({ ... }) do assert.is_truthy(err:find(piece, 1, true), err) end
    return err
  end

  -- nothing reached the server: its count of calls is unchanged
  local function nothing_sent(fn)
    local before = srv:stats().calls
    fn()
    assert.equal(before, srv:stats().calls)
  end

  describe("call options", function()
    it("refuse a misspelt key on blocking calls, naming the nearest valid one", function()
      nothing_sent(function()
        raises(function() client:put_external_event(req(), { timout = 1 }) end,
               "bad argument #2 to 'put_external_event' (timout: unknown call option (did you mean timeout?))")
        raises(function() client:get_external_event({ wf_run_id = "w", external_event_def_name = DEF, guid = "g" },
                                                    { metdata = {} }) end,
               "bad argument #2 to 'get_external_event' (metdata: unknown call option (did you mean metadata?))")
        raises(function() client:put_external_event_def("d", { replay = false }) end,
               "(replay: unknown call option (did you mean reply?))")
        raises(function() client:get_external_event_def("d", { colour = "red" }) end,
               "(colour: unknown call option (expected timeout, metadata or reply))")
        raises(function() client:put_external_event(req(), { [1] = true }) end,
               "call options are named timeout, metadata or reply, got a number key")
      end)
    end)

    it("refuse a misspelt key on async calls, on_don included", function()
      nothing_sent(function()
        raises(function() client:put_external_event_async(req(), { on_don = print }) end,
               "bad argument #2 to 'put_external_event_async' (on_don: unknown call option (did you mean on_done?))")
        raises(function() client:get_external_event_def_async("d", { timeot = 1 }) end,
               "bad argument #2 to 'get_external_event_def_async' (timeot: unknown call option (did you mean timeout?))")
      end)
    end)

    it("refuse `retry` where it does not apply: async calls and every call but the post", function()
      nothing_sent(function()
        raises(function() client:put_external_event_async(req(), { retry = true }) end,
               "bad argument #2 to 'put_external_event_async' (retry: an async call does not retry")
        raises(function() client:get_external_event({ wf_run_id = "w", external_event_def_name = DEF, guid = "g" },
                                                    { retry = true }) end,
               "bad argument #2 to 'get_external_event' (retry: this call does not retry")
        raises(function() client:put_external_event_def("d", { retry = { attempts = 2 } }) end,
               "(retry: this call does not retry")
        raises(function() client:get_external_event_def_async("d", { retry = false }) end,
               "(retry: an async call does not retry")
      end)
    end)

    it("are checked the same on a littlehorse.core client", function()
      local c = core.client { target = "127.0.0.1:" .. srv.port, timeout = 5, max_send_size = 1024 }
      raises(function() c:put_external_event(req(), { timout = 1 }) end, "(timout: unknown call option (did you mean timeout?))")
      raises(function() c:put_external_event_async(req(), { on_don = print }) end, "(on_don: unknown call option (did you mean on_done?))")
      raises(function() c:put_external_event(req(), { retry = true }) end, "(retry: this call does not retry")
      assert(c:put_external_event(req(), { timeout = 5, reply = false }))
      c:close()
    end)

    it("still take every valid key", function()
      assert(client:put_external_event(req(), { timeout = 5, metadata = { ["x-trace"] = "1" }, reply = false }))
      local done
      local h = client:put_external_event_async(req(), { timeout = 5, metadata = {}, reply = false,
                                                         on_done = function(ok) done = ok end })
      while client:in_flight() > 0 do client:poll(0.05) end
      assert.is_true(done)
      assert.is_true(h:done())
    end)
  end)

  describe("post_event options", function()
    it("refuse a misspelt key, naming post_event's argument and the nearest valid one", function()
      nothing_sent(function()
        raises(function() client:post_event("w", DEF, 1, { giud = "x" }) end,
               "bad argument #4 to 'post_event' (giud: unknown option (did you mean guid?))")
        raises(function() client:post_event("w", DEF, 1, { thread_run_numbr = 0 }) end,
               "(thread_run_numbr: unknown option (did you mean thread_run_number?))")
        raises(function() client:post_event("w", DEF, 1, { on_done = print }) end,
               "(on_done: unknown option (expected guid, thread_run_number, node_run_position, timeout, "
               .. "metadata, reply, retry or validate))")
        raises(function() client:post_event("w", DEF, 1, "fast") end,
               "bad argument #4 to 'post_event' (table of options expected, got string)")
      end)
    end)

    it("take metadata, sent as request headers", function()
      local ev = assert(client:post_event("pe-md", DEF, 1, { metadata = { ["x-trace"] = "abc" }, retry = false }))
      assert.equal(1, ev.content)
      local ok, err = pcall(client.post_event, client, "pe-md", DEF, 1, { metadata = { ["Bad Header"] = "x" } })
      assert.is_false(ok)
      assert.matches("bad argument #4 to 'post_event' %(metadata", err)
    end)
  end)

  describe("retry options", function()
    it("refuse a misspelt option and a misspelt status name, with the nearest valid one", function()
      nothing_sent(function()
        raises(function() client:put_external_event(req(), { retry = { attemps = 3 } }) end,
               "bad retry option attemps: unknown option (did you mean attempts?)")
        raises(function() client:post_event("w", DEF, 1, { retry = { retry_on = { "UNAVAILBLE" } } }) end,
               "bad retry option retry_on: UNAVAILBLE is not a gRPC status name (did you mean UNAVAILABLE?)")
        raises(function() client:put_external_event(req(), { retry = { retry_on = { "unavailable" } } }) end,
               "unavailable is not a gRPC status name (did you mean UNAVAILABLE?)")
        raises(function() client:put_external_event(req(), { retry = { retry_on = { "TIMEOUT" } } }) end,
               "TIMEOUT is not a gRPC status name like \"UNAVAILABLE\"")
        raises(function() client:put_external_event(req(), { retry = { retry_on = { UNAVAILABLE = true } } }) end,
               "retry_on: expected a list of status names, got a string key")
        raises(function() client:put_external_event(req(), { retry = "yes" }) end,
               "bad retry option retry: expected true, false or a table, got string")
      end)
    end)

    it("take every valid option and status name", function()
      local ev, info = client:put_external_event(req(), { retry = {
        attempts = 2, initial_backoff = 0.01, max_backoff = 0.02, multiplier = 1.5, deadline = 5,
        per_attempt_timeout = 5, retry_on = { "UNAVAILABLE", "ABORTED", "INTERNAL" }, sleep = function() end,
        on_retry = function() end } })
      assert.is_table(ev)
      assert.equal(1, info.attempts)
    end)
  end)

  describe("client options", function()
    it("name the nearest valid option", function()
      raises(function() lh.client { hots = "localhost" } end, "bad argument #1 to 'client' (hots: unknown option (did you mean host?))")
      raises(function() lh.client { oauth = { client_id = "i", client_secret = "s", token_url = "http://h/t", tokenurl = "x" } } end,
             "oauth: tokenurl: unknown option (did you mean token_url?)")
    end)

    it("core.client refuses unknown options too", function()
      raises(function() core.client { target = "h:1", timeout = 1, max_send_size = 1, tenat = "t" } end,
             "tenat: unknown option (did you mean tenant?)")
      raises(function() core.client { target = "h:1", timeout = 1, max_send_size = 1, tls = { ca = "x" } } end,
             "tls.ca: unknown option")
    end)
  end)
end)
