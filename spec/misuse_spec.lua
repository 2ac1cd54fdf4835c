-- Misuse errors point at the caller's line (not inside the library), name the public method
-- the caller called, and read well.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local config = require "littlehorse.config"
local devserver = require "devserver"
local rt = require "runtime"

local DEF = "misuse"
local HERE = "spec/misuse_spec.lua"

-- Calls fn, which must raise an error blamed on line `line` of this file; returns the
-- message after the position. (fn must not end in a tail call, which leaves no line behind.)
local function raised_at(line, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.is_string(err)
  local at, n, msg = err:match("^([^\n]-):(%d+): (.*)$")
  assert.equal(HERE .. ":" .. line, tostring(at) .. ":" .. tostring(n), err)
  return msg
end

-- The line that calls this.
local function line() return debug.getinfo(2, "l").currentline end

describe("misuse errors", function()
  local srv, client
  lazy_setup(function() srv, client = devserver.with_client({ defs = { DEF } }, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local function req(extra)
    local r = { wf_run_id = "misuse", external_event_def_name = DEF }
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
  end

  describe("point at the caller's line", function()
    it("for a bad request or call option, blocking or async, and a closed client", function()
      local l
      l = line(); raised_at(l, function() client:put_external_event(req { wf_run_id = 1 }) end)
      l = line(); raised_at(l, function() client:put_external_event(req(), { timeout = -1 }) end)
      l = line(); raised_at(l, function() client:get_external_event_def_async(7) end)
      l = line(); raised_at(l, function() client:put_external_event(req { content = print }, { retry = true }) end)
      local c = lh.client { host = "127.0.0.1", port = srv.port }
      c:close()
      l = line(); local msg = raised_at(l, function() c:put_external_event(req()) end)
      assert.equal("littlehorse: this client is closed", msg)
      l = line(); raised_at(l, function() c:poll() end)
    end)

    it("for a bad option of lh.client, post_event, a retry option and a value constructor", function()
      local l
      l = line(); raised_at(l, function() lh.client { port = "2023" } end)
      l = line(); raised_at(l, function() client:post_event("w", DEF, nil, { retry = { attempts = 0 } }) end)
      l = line(); raised_at(l, function() client:post_event("w", DEF, print) end)
      l = line(); raised_at(l, function() lh.timestamp("2023-02-29T00:00:00Z") end)
      l = line(); raised_at(l, function() config.load { tenant = "" } end)
    end)

    it("when the call is made through pcall directly (no Lua function in between)", function()
      local l = line(); local ok, err = pcall(client.put_external_event, client, req { guid = "a/b" })
      assert.is_false(ok)
      assert.equal(HERE .. ":" .. l .. ": ", err:sub(1, #HERE + #tostring(l) + 3))
    end)

    it("for littlehorse.core clients and functions used directly", function()
      local c = core.client { target = "127.0.0.1:" .. srv.port, timeout = 5, max_send_size = 1048576 }
      local l
      l = line(); raised_at(l, function() c:put_external_event(req { wf_run_id = {} }) end)
      l = line(); raised_at(l, function() core.json_encode { f = print } end)
      c:close()
      l = line(); raised_at(l, function() c:put_external_event(req()) end)
    end)
  end)

  describe("name the public method", function()
    it("a method called with '.' instead of ':' names itself, not an internal function", function()
      for _, name in ipairs { "put_external_event", "get_external_event_def", "put_external_event_async", "post_event",
                              "poll", "in_flight", "close" } do
        local l = line(); local msg = raised_at(l, function() client[name](5) end)
        assert.equal("bad argument #1 to '" .. name .. "' (littlehorse.client expected, got number; call it as client:"
                     .. name .. "(...))", msg)
      end
    end)

    it("post_event's misuse names post_event and its argument, not the put it makes", function()
      local function post_error(...)
        local args = { ... }
        local ok, err = pcall(function() return client:post_event(rt.unpack(args, 1, 4)) end)
        assert.is_false(ok)
        return err:gsub("^[^\n]-:%d+: ", "")
      end
      assert.matches("^bad argument #1 to 'post_event' %(wf_run_id: expected a string or a table", post_error(42, DEF, 1))
      assert.matches("^bad argument #2 to 'post_event' %(external_event_def_name: expected a string, got boolean",
                     post_error("w", true, 1))
      assert.matches("^bad argument #3 to 'post_event' %(content%[2%]: cannot convert a function",
                     post_error("w", DEF, lh.array { 1, print }))
      assert.matches("^bad argument #4 to 'post_event' %(guid: must not contain '/'", post_error("w", DEF, 1, { guid = "a/b" }))
      assert.matches("^bad argument #4 to 'post_event' %(timeout: must be a positive number", post_error("w", DEF, 1, { timeout = 0 }))
    end)
  end)

  describe("read well", function()
    local function msg_of(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      return (err:gsub("^[^\n]-:%d+: ", ""))
    end

    it("says 'an ExternalEventId'", function()
      assert.equal("bad argument #1 to 'get_external_event' (expected an ExternalEventId table, got number)",
                   msg_of(function() return client:get_external_event(5) end))
      assert.equal("bad argument #1 to 'put_external_event' (expected a PutExternalEvent request table, got string)",
                   msg_of(function() return client:put_external_event("x") end))
    end)

    it("says what type a port was given as", function()
      assert.equal("bad argument #1 to 'client' (port: expected a port number 1-65535, got string)",
                   msg_of(function() return lh.client { port = "2023" } end))
      assert.equal("bad argument #1 to 'client' (port: expected a port number 1-65535, got 70000)",
                   msg_of(function() return lh.client { port = 70000 } end))
    end)

    it("says 'no such date' for a date that does not exist", function()
      assert.equal("bad argument #1 to 'timestamp' (no such date: 2023-02-29)",
                   msg_of(function() return lh.timestamp("2023-02-29T12:00:00Z") end))
      assert.equal("bad argument #1 to 'timestamp' (no such date: 2024-04-31)",
                   msg_of(function() return lh.timestamp("2024-04-31T00:00:00+02:00") end))
      assert(lh.timestamp("2024-02-29T00:00:00Z"))
    end)

    it("names the nearest request field for a misspelt one", function()
      assert.equal("bad argument #1 to 'put_external_event' (giud: unknown field of a PutExternalEvent request (did you mean guid?))",
                   msg_of(function() return client:put_external_event(req { giud = "x" }) end))
    end)
  end)

  describe("host with a port", function()
    it("is refused when the client is made, pointing to port and target", function()
      local ok, err = pcall(lh.client, { host = "lh.example.com:2023" })
      assert.is_false(ok)
      assert.matches('host: "lh%.example%.com:2023" includes a port; give port = 2023, or target = "lh%.example%.com:2023"', err)
      -- an IPv6 literal is a host, not a host and a port
      local c = lh.client { host = "::1", port = 1 }
      assert.equal("[::1]:1", c:target())
      c:close()
    end)

    it("is refused from LHC_API_HOST too, pointing to LHC_API_PORT", function()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format("package.path = %q; package.cpath = %q\n", package.path, package.cpath),
              'local ok, err = pcall(require("littlehorse").client, { config_file = false })\n',
              'io.write(ok and "made" or err)\n')
      f:close()
      local p = io.popen("env LHC_API_HOST=lh.example.com:2023 " .. rt.lua .. " " .. script .. " 2>&1")
      local out = p:read("*a")
      p:close()
      os.remove(script)
      assert.matches("LHC_API_HOST=lh%.example%.com:2023 %(from the environment%): a host name without a port; "
                     .. "set LHC_API_PORT=2023 for the port", out)
    end)
  end)
end)
