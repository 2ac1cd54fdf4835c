-- Bad servers, one row per `it`: peers that hang, cut, lie, flood or die. Every row ends in a
-- reply or in `nil, err, code` within the call's deadline (measured), never a crash or a hang.
-- The peers are spec/support/bad_peer.py (raw TCP, or gRPC through Debian's python3-grpcio).
-- See docs/guarantees.md ("Bad servers").
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local bad_peer = require "bad_peer"

local DEF = "bad-server"
local now = core.now

local function request(wf, extra)
  local r = { wf_run_id = wf or "wf-1", external_event_def_name = DEF, content = { n = 1 } }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

-- One call; returns ev, err, code and the seconds it took.
local function timed(client, req, opts)
  local t0 = now()
  local ev, err, code = client:put_external_event(req or request(), opts)
  return ev, err, code, now() - t0
end

-- A peer and a client on it for one row, both stopped whatever the row does.
local function with_peer(mode, arg, client_opts, fn)
  local peer = bad_peer.start(mode, arg)
  local opts = { target = peer.target, timeout = 5 }
  for k, v in pairs(client_opts or {}) do opts[k] = v end
  local client = lh.client(opts)
  local ok, e = pcall(fn, client, peer)
  client:close()
  peer:stop()
  if not ok then error(e, 0) end
end

describe("bad servers", function()
  lazy_setup(function()
    assert(bad_peer.ensure_grpc())
  end)

  describe("that never answer: the deadline holds", function()
    it("a TCP peer that accepts and never writes a byte: DEADLINE_EXCEEDED at the deadline", function()
      with_peer("silent", nil, { timeout = 1 }, function(client)
        local ev, err, code, took = timed(client)
        assert.is_nil(ev)
        assert.equal("DEADLINE_EXCEEDED", code)
        assert.equal(4, err.status)
        assert.is_true(took >= 0.95 and took < 2, "took " .. took)
        -- a per-call timeout overrides the client's
        ev, err, code, took = timed(client, nil, { timeout = 0.3 })
        assert.equal("DEADLINE_EXCEEDED", code)
        assert.is_true(took >= 0.25 and took < 1.3, "took " .. took)
      end)
    end)

    it("a gRPC server that takes the call and never answers: DEADLINE_EXCEEDED at the deadline", function()
      with_peer("hang", nil, { timeout = 1 }, function(client, peer)
        local ev, _, code, took = timed(client)
        assert.is_nil(ev)
        assert.equal("DEADLINE_EXCEEDED", code)
        assert.is_true(took >= 0.95 and took < 2, "took " .. took)
        assert.matches("CALL", peer:log())
      end)
    end)

    it("an answer that comes after the deadline is dropped; the next call on the client works", function()
      with_peer("slowok", "1.5", { timeout = 0.5 }, function(client)
        local ev, _, code, took = timed(client)
        assert.is_nil(ev)
        assert.equal("DEADLINE_EXCEEDED", code)
        assert.is_true(took < 1.0, "took " .. took)
        local ev2, err2 = client:put_external_event(request(), { timeout = 5 })
        assert.is_nil(err2)
        assert.equal("ok", ev2.content)
      end)
    end)
  end)

  describe("that go away", function()
    it("a connection cut mid-call (after the request left): UNAVAILABLE at once; the client reconnects", function()
      local srv = devserver.start { defs = { DEF } }
      local ok, e = pcall(with_peer, "cutter", tostring(srv.port), { timeout = 5 }, function(client, peer)
        assert(client:put_external_event(request("before-the-cut")))
        local ev, err, code, took = timed(client, request("CUT-HERE"))
        assert.is_nil(ev)
        assert.equal("UNAVAILABLE", code, tostring(err))
        assert.is_true(took < 2, "took " .. took)
        assert.matches("CUT", peer:log())
        -- the same client makes a new connection for the next call
        local again, err2 = client:put_external_event(request("after-the-cut"))
        assert.is_nil(err2)
        assert.equal("after-the-cut", again.id.wf_run_id.id)
      end)
      srv:stop()
      assert(ok, e)
    end)

    it("a server killed (SIGKILL) while the call is in flight: UNAVAILABLE at once, not at the deadline", function()
      with_peer("hang", nil, { timeout = 10 }, function(client, peer)
        peer:kill_after(0.5)
        local ev, _, code, took = timed(client)
        assert.is_nil(ev)
        assert.equal("UNAVAILABLE", code)
        assert.is_true(took >= 0.4 and took < 3, "took " .. took)
      end)
    end)

    it("a server process that exits when the call arrives: UNAVAILABLE at once", function()
      with_peer("exit", nil, { timeout = 10 }, function(client)
        local ev, _, code, took = timed(client)
        assert.is_nil(ev)
        assert.equal("UNAVAILABLE", code)
        assert.is_true(took < 3, "took " .. took)
      end)
    end)

    it("no server (connection refused) and a name that does not resolve: UNAVAILABLE within the deadline", function()
      for _, target in ipairs { "127.0.0.1:1", "dns:///no-such-host.invalid:2023" } do
        local client = lh.client { target = target, timeout = 3 }
        local ev, err, code, took = timed(client)
        client:close()
        assert.is_nil(ev)
        assert.is_truthy(code == "UNAVAILABLE" or code == "DEADLINE_EXCEEDED", tostring(err))
        assert.is_true(took < 4.5, target .. " took " .. took)
      end
    end)
  end)

  describe("that answer wrongly", function()
    it("bytes that are not HTTP/2 at all: UNAVAILABLE, no crash", function()
      with_peer("junk", nil, { timeout = 3 }, function(client)
        local ev, err, code, took = timed(client)
        assert.is_nil(ev)
        assert.equal("UNAVAILABLE", code, tostring(err))
        assert.is_true(took < 3.5)
      end)
    end)

    it("a gRPC reply whose bytes are not a message: INTERNAL, no crash; the client stays usable", function()
      with_peer("garbage", nil, nil, function(client)
        for _ = 1, 3 do
          local ev, err, code = timed(client)
          assert.is_nil(ev)
          assert.equal("INTERNAL", code)
          assert.equal(13, err.status)
          assert.matches("not a valid message", err.message)
          assert.equal("PutExternalEvent", err.method)
        end
        local def, _, code = client:get_external_event_def "x"
        assert.is_nil(def)
        assert.equal("INTERNAL", code)
      end)
    end)

    it("unknown fields everywhere and an unknown VariableValue member: decoded, the unknown parts ignored", function()
      with_peer("unknown", nil, nil, function(client)
        local ev, err = timed(client)
        assert.is_nil(err)
        assert.equal("wf-1", ev.id.wf_run_id.id)
        assert.equal("ev", ev.id.external_event_def_id.name)
        assert.equal("guid-1", ev.id.guid)
        assert.equal(1700000000, ev.created_at.seconds)
        assert.is_nil(ev.content)        -- a member from a newer server: as if unset
        assert.is_nil(ev.content_type)
        assert.is_false(ev.claimed)
      end)
      with_peer("unknown2", nil, nil, function(client)
        local ev, err = timed(client)
        assert.is_nil(err)
        assert.equal("STR", ev.content_type)
        assert.equal("hello", ev.content)
      end)
    end)

    it("a reply larger than the 4 MiB receive limit: RESOURCE_EXHAUSTED, nothing decoded", function()
      with_peer("huge", tostring(5 * 1024 * 1024), nil, function(client)
        local ev, err, code = timed(client)
        assert.is_nil(ev)
        assert.equal("RESOURCE_EXHAUSTED", code)
        assert.matches("larger than max", err.message)
      end)
      -- just under the limit is fine
      with_peer("huge", tostring(4 * 1024 * 1024 - 1024), nil, function(client)
        local ev, err = timed(client)
        assert.is_nil(err)
        assert.equal(4 * 1024 * 1024 - 1024, #ev.content)
      end)
    end)

    it("a reply nested 100000 levels deep (native arrays): INTERNAL, no stack overflow", function()
      with_peer("deep", "100000", nil, function(client)
        local ev, err, code = timed(client)
        assert.is_nil(ev)
        assert.equal("INTERNAL", code, tostring(err))
      end)
      -- as deep as our own requests may be (99 message levels) is decoded
      with_peer("deep", "49", nil, function(client)
        local ev, err = timed(client)
        assert.is_nil(err)
        local v, depth = ev.content, 0
        while type(v) == "table" do
          assert.equal("ARRAY", v.type)
          v, depth = v.value[1], depth + 1
        end
        assert.equal(49, depth)
        assert.equal(1, v)
      end)
    end)

    it("reply JSON nested 100000 levels deep: handed back as raw text with the decode error", function()
      with_peer("deepjson", "100000", nil, function(client)
        local ev, err = timed(client)
        assert.is_nil(err)
        assert.equal("JSON_ARR", ev.content_type)
        assert.equal(getmetatable(ev.content), core.typed_mt)
        assert.equal(200000, #ev.content.value)
        assert.matches("128", ev.content.error)
      end)
    end)
  end)

  -- Async calls in flight when the server dies must all complete.
  it("killed with 100 async calls in flight: all complete with errors, no hang", function()
    with_peer("hang", nil, { timeout = 8 }, function(client, peer)
      local handles = {}
      for i = 1, 100 do handles[i] = client:put_external_event_async(request("async-" .. i), { timeout = 8 }) end
      local deadline = now() + 5
      while not peer:log():find("CALL") and now() < deadline do core.sleep(0.02) end
      peer:kill()
      local t0 = now()
      local codes = {}
      for i, h in ipairs(handles) do
        local ev, err, code = h:wait(10)
        assert.is_nil(ev, "call " .. i)
        codes[code] = (codes[code] or 0) + 1
        assert.is_truthy(err, "call " .. i)
      end
      local took = now() - t0
      assert.same({ UNAVAILABLE = 100 }, codes)
      assert.is_true(took < 4, "took " .. took)
    end)
  end)
end)
