-- Connecting like the official clients, end to end against dev server processes:
-- TLS, mutual TLS, tenants, bearer tokens and the OAuth client-credentials flow, shared
-- channels, and round-robin over two servers.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local token_server = require "token_server"
local rt = require "runtime"

local DEF = "tx"

local certs
local function certs_dir()
  if not certs then
    certs = io.popen("mktemp -d /tmp/lh-certs.XXXXXX"):read("*l")
    assert(rt.execute("sh spec/support/make-certs.sh " .. certs))
  end
  return certs
end

local function post(c, n)
  return c:put_external_event { wf_run_id = "tx-" .. (n or 1), external_event_def_name = DEF, content = n or 1 }
end

-- A client made with these options cannot post: nil and UNAVAILABLE. Returns the error.
local function refused(opts)
  local c = lh.client(opts)
  local ev, err, code = post(c)
  c:close()
  assert.is_nil(ev)
  assert.equal("UNAVAILABLE", code)
  return err
end

describe("TLS", function()
  local srv, mtls
  lazy_setup(function()
    local d = certs_dir()
    srv = devserver.start { defs = { DEF }, args = { "--tls-cert", d .. "/server.pem", "--tls-key", d .. "/server.key" } }
    mtls = devserver.start { defs = { DEF }, args = { "--tls-cert", d .. "/server.pem", "--tls-key", d .. "/server.key",
                                                      "--tls-client-ca", d .. "/ca.pem" } }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
    if mtls then mtls:stop() end
    if certs then rt.execute("rm -rf " .. certs) end
  end)

  it("connects with the right CA", function()
    local c = lh.client { host = "localhost", port = srv.port, protocol = "TLS", ca_cert = certs .. "/ca.pem" }
    local ev, err = post(c)
    assert.is_nil(err)
    assert.equal(1, ev.content)
    c:close()
  end)

  it("fails with UNAVAILABLE and says why with the wrong CA", function()
    local err = refused { host = "localhost", port = srv.port, protocol = "TLS", ca_cert = certs .. "/wrong-ca.pem", timeout = 3 }
    assert.matches("[Hh]andshake", err.message)
  end)

  it("does not speak plaintext to a TLS server", function()
    refused { host = "127.0.0.1", port = srv.port, timeout = 3 }
  end)

  it("mutual TLS: refused without a client certificate, accepted with one", function()
    refused { host = "localhost", port = mtls.port, protocol = "TLS", ca_cert = certs .. "/ca.pem", timeout = 3 }
    local c = lh.client { host = "localhost", port = mtls.port, protocol = "TLS", ca_cert = certs .. "/ca.pem",
                          client_cert = certs .. "/client.pem", client_key = certs .. "/client.key" }
    assert(post(c, 2))
    c:close()
    refused { host = "localhost", port = mtls.port, protocol = "TLS", ca_cert = certs .. "/ca.pem",
              client_cert = certs .. "/wrong-client.pem", client_key = certs .. "/wrong-client.key", timeout = 3 }
  end)

  it("uses server_name to check a certificate issued for another name", function()
    -- 127.0.0.2 is not in the certificate; the override makes the check use "localhost"
    local c = lh.client { target = "127.0.0.1:" .. srv.port, protocol = "TLS", ca_cert = certs .. "/ca.pem",
                          server_name = "localhost" }
    assert(post(c, 3))
    c:close()
  end)
end)

describe("tenants and tokens", function()
  it("sends the tenant; a tenant the server does not allow is PERMISSION_DENIED", function()
    local srv = devserver.start { defs = { DEF }, args = { "--tenants", "acme" } }
    local ok = lh.client { host = "127.0.0.1", port = srv.port, tenant = "acme" }
    assert(post(ok))
    local bad = lh.client { host = "127.0.0.1", port = srv.port, tenant = "globex" }
    local ev, err, code = post(bad)
    assert.is_nil(ev)
    assert.equal("PERMISSION_DENIED", code)
    assert.equal("Tenant not allowed", err.message)
    ok:close()
    bad:close()
    srv:stop()
  end)

  it("sends a static bearer token; a wrong one is UNAUTHENTICATED", function()
    local srv = devserver.start { defs = { DEF }, args = { "--require-token", "s3cret-token" } }
    local c = lh.client { host = "127.0.0.1", port = srv.port, token = "s3cret-token" }
    assert(post(c))
    -- every RPC carries it, blocking or async
    assert(c:put_external_event_def("tx-def"))
    assert(c:get_external_event_def("tx-def"))
    assert(c:get_external_event_def_async("tx-def"):wait())
    assert(c:put_external_event_async({ wf_run_id = "tx-async", external_event_def_name = DEF }):wait())
    local bad = lh.client { host = "127.0.0.1", port = srv.port, token = "nope" }
    local ev, err, code = post(bad)
    assert.is_nil(ev)
    assert.equal("UNAUTHENTICATED", code)
    assert.is_nil(tostring(err):find("nope", 1, true), "the token is not in the error")
    assert.is_nil(tostring(bad):find("nope", 1, true), "the token is not in tostring(client)")
    local none = lh.client { host = "127.0.0.1", port = srv.port }
    assert.equal("UNAUTHENTICATED", select(3, post(none)))
    c:close(); bad:close(); none:close()
    srv:stop()
  end)

  it("OAuth: one token for many calls, refreshed once on UNAUTHENTICATED and after expiry", function()
    local tokens = os.tmpname()
    local ts = token_server.start { client_id = "lua-client", client_secret = "very-secret", expires_in = 3, token_file = tokens }
    local srv = devserver.start { defs = { DEF }, args = { "--token-file", tokens } }
    local ok, e = pcall(function()
      local c = lh.client { host = "127.0.0.1", port = srv.port,
                            oauth = { client_id = "lua-client", client_secret = "very-secret", token_url = ts.token_url } }
      for i = 1, 20 do assert(post(c, i)) end
      assert.equal(1, ts:stats().issued)
      -- the server stops accepting every token: the next call refreshes once and succeeds
      ts:revoke() -- the token file is rewritten before this returns; the dev server re-reads
                  -- a changed file on every call
      assert(post(c, 21))
      assert.equal(2, ts:stats().issued)
      -- after expiry (3 s, refreshed a little early) a new token is fetched before the call
      core.sleep(3)
      assert(post(c, 22))
      assert.equal(3, ts:stats().issued)
      assert.is_nil(tostring(c):find("very-secret", 1, true))
      c:close()
      -- wrong credentials: a clear error without the secret
      local bad = lh.client { host = "127.0.0.1", port = srv.port,
                              oauth = { client_id = "lua-client", client_secret = "wrong-secret", token_url = ts.token_url } }
      local ev, err, code = post(bad)
      assert.is_nil(ev)
      assert.equal("UNAUTHENTICATED", code)
      assert.matches("no access token", err.message)
      assert.is_nil(err.message:find("wrong-secret", 1, true))
      bad:close()
    end)
    srv:stop()
    ts:stop()
    os.remove(tokens)
    assert(ok, e)
  end)
end)

describe("channels", function()
  it("1000 clients with the same settings share one connection", function()
    local srv = devserver.start { defs = { DEF } }
    local before = core.channel_count()
    local clients = {}
    for i = 1, 1000 do clients[i] = lh.client { host = "127.0.0.1", port = srv.port } end
    assert.equal(before + 1, core.channel_count())
    for i = 1, 1000, 37 do assert(post(clients[i], i)) end
    assert(post(clients[1000], 1000))
    local st = srv:stats()
    assert.equal(1, st.accepted)
    for _, c in ipairs(clients) do c:close() end
    assert.equal(before, core.channel_count())
    -- different settings, different channel
    local a = lh.client { host = "127.0.0.1", port = srv.port }
    local b = lh.client { host = "127.0.0.1", port = srv.port, keepalive_time_ms = 60000 }
    assert.equal(before + 2, core.channel_count())
    a:close(); b:close()
    srv:stop()
  end)

  it("round_robin spreads posts over every server of a target", function()
    local s1 = devserver.start { defs = { DEF } }
    local s2 = devserver.start { defs = { DEF } }
    local c = lh.client { target = string.format("ipv4:127.0.0.1:%d,127.0.0.1:%d", s1.port, s2.port),
                          lb_policy = "round_robin" }
    -- round_robin picks among the servers it is connected to: until the second connection is
    -- up (slower under sanitizers and load), every post goes to the first. So post until both
    -- have had some, within a bound.
    local n, e1, e2 = 0, 0, 0
    local deadline = core.now() + 10
    repeat
      for _ = 1, 40 do n = n + 1; assert(post(c, n)) end
      e1, e2 = s1:stats().events, s2:stats().events
    until (e1 >= 10 and e2 >= 10) or core.now() > deadline
    assert.equal(n, e1 + e2)
    assert.is_true(e1 >= 10 and e2 >= 10, string.format("split %d / %d", e1, e2))
    c:close()
    s1:stop()
    s2:stop()
  end)
end)
