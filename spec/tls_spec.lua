-- The dev-server side of TLS: TLS and mutual TLS (checked with `openssl s_client` and with
-- grpc-probe, a C-core client), allowed tenants (through the Lua client's `tenant`), bearer
-- tokens (through grpc-probe, which sends any header), and the local OAuth
-- token endpoint whose tokens the dev server accepts (--token-file).
local lh = require "littlehorse"
local core = require "littlehorse.core"
local devserver = require "devserver"
local probe = require "probe"
local token_server = require "token_server"
local shell = require "sh"
local rt = require "runtime"

local DEF = "tls-def"

local q = shell.q

local defer = require "cleanup" (function(f) finally(f) end) -- run fn when the test ends

local function sh(cmd)
  local out = os.tmpname()
  local r1, _, code = rt.execute(cmd .. " >" .. q(out) .. " 2>&1")
  local f = io.open(out)
  local text = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(out)
  return (r1 == true or r1 == 0) and 0 or (code or 1), text
end

local certs -- directory with ca.pem, server.pem/.key, client.pem/.key, wrong-ca.pem, wrong-client.pem/.key

-- `openssl s_client` against 127.0.0.1:port, kept open 0.5 s so that a server refusing the
-- client certificate after the TLS 1.3 handshake is seen too. -> exit code, output
local function s_client(port, o)
  local args = { "openssl s_client -connect 127.0.0.1:" .. port, "-servername localhost", "-alpn h2",
                 "-verify_return_error", "-CAfile " .. q(certs .. "/" .. (o.ca or "ca.pem")) }
  if o.cert then
    args[#args + 1] = "-cert " .. q(certs .. "/" .. o.cert .. ".pem")
    args[#args + 1] = "-key " .. q(certs .. "/" .. o.cert .. ".key")
  end
  return sh("sleep 0.5 | timeout 10 " .. table.concat(args, " "))
end

local function p(srv, o)
  o = o or {}
  local r = {}
  for k, v in pairs(o) do r[k] = v end
  r.target = r.target or ("localhost:" .. srv.port)
  r.def = r.def or DEF
  r.timeout = r.timeout or 5
  for _, k in ipairs { "ca", "cert", "key" } do
    if r[k] then r[k] = certs .. "/" .. r[k] end
  end
  return probe.run(r).calls[1]
end

lazy_setup(function()
  assert(sh("command -v openssl") == 0, "openssl is not installed (the TLS specs make their certificates with it)")
  certs = os.tmpname()
  os.remove(certs)
  local code, out = sh("sh spec/support/make-certs.sh " .. q(certs))
  assert(code == 0, "make-certs.sh failed: " .. out)
  probe.build()
end)

lazy_teardown(function()
  if certs then rt.execute("rm -rf " .. q(certs)) end
end)

describe("TLS (--tls-cert/--tls-key)", function()
  local srv
  lazy_setup(function()
    srv = devserver.start { defs = { DEF }, args = { "--tls-cert", certs .. "/server.pem", "--tls-key",
                                                     certs .. "/server.key" } }
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("completes a handshake with the right CA (openssl s_client, ALPN h2)", function()
    local code, out = s_client(srv.port, {})
    assert.equal(0, code, out)
    assert.matches("Verify return code: 0 %(ok%)", out)
    assert.matches("ALPN protocol: h2", out)
    assert.matches("CN ?= ?localhost", out)
  end)

  it("fails verification with the wrong CA", function()
    local code, out = s_client(srv.port, { ca = "wrong-ca.pem" })
    assert.not_equal(0, code)
    assert.matches("certificate verify failed", out)
  end)

  it("serves gRPC over TLS: right CA OK (by name and by IP SAN), wrong CA and plaintext UNAVAILABLE", function()
    assert.equal("OK", p(srv, { ca = "ca.pem" }).code)
    assert.equal("OK", p(srv, { ca = "ca.pem", target = "127.0.0.1:" .. srv.port }).code)
    local wrong = p(srv, { ca = "wrong-ca.pem" })
    assert.equal("UNAVAILABLE", wrong.code)
    assert.matches("certificate verify failed", wrong.message)
    assert.equal("UNAVAILABLE", p(srv, {}).code) -- no TLS
    -- and the Lua client, which speaks plaintext only so far
    local c = lh.client { host = "127.0.0.1", port = srv.port, timeout = 2 }
    local ev, _, code = c:get_external_event_def(DEF)
    c:close()
    assert.is_nil(ev)
    assert.equal("UNAVAILABLE", code)
  end)
end)

describe("mutual TLS (--tls-client-ca)", function()
  local srv
  lazy_setup(function()
    srv = devserver.start { defs = { DEF }, args = { "--tls-cert", certs .. "/server.pem", "--tls-key",
                                                     certs .. "/server.key", "--tls-client-ca", certs .. "/ca.pem" } }
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("accepts a client certificate signed by the CA", function()
    local code, out = s_client(srv.port, { cert = "client" })
    assert.equal(0, code, out)
    assert.matches("Verify return code: 0 %(ok%)", out)
    assert.equal("OK", p(srv, { ca = "ca.pem", cert = "client.pem", key = "client.key" }).code)
  end)

  it("refuses a handshake without a client certificate, or with one from another CA", function()
    local code, out = s_client(srv.port, {})
    assert.not_equal(0, code, out)
    code, out = s_client(srv.port, { cert = "wrong-client" })
    assert.not_equal(0, code, out)
    assert.equal("UNAVAILABLE", p(srv, { ca = "ca.pem" }).code)
    assert.equal("UNAVAILABLE", p(srv, { ca = "ca.pem", cert = "wrong-client.pem", key = "wrong-client.key" }).code)
    assert.matches("peer did not return a certificate", srv:log())
  end)
end)

describe("TLS options", function()
  it("are checked at start: pairs, readable PEM files", function()
    local code, out = sh("./build/lh-devserver --port 0 --tls-cert " .. q(certs .. "/server.pem"))
    assert.equal(2, code)
    assert.matches("%-%-tls%-cert and %-%-tls%-key go together", out)
    code, out = sh("./build/lh-devserver --port 0 --tls-client-ca " .. q(certs .. "/ca.pem"))
    assert.equal(2, code)
    code, out = sh("./build/lh-devserver --port 0 --tls-cert /nonexistent.pem --tls-key " .. q(certs .. "/server.key"))
    assert.equal(1, code)
    assert.matches("%-%-tls%-cert /nonexistent.pem: No such file", out)
    code, out = sh("./build/lh-devserver --port 0 --tls-cert spec/tls_spec.lua --tls-key " .. q(certs .. "/server.key"))
    assert.equal(1, code)
    assert.matches("not a PEM file", out)
  end)
end)

describe("tenants (--tenants)", function()
  it("serves listed tenants, refuses others with PERMISSION_DENIED, and a missing header is 'default'", function()
    local srv = devserver.start { defs = { DEF }, args = { "--tenants", "default,acme", "--tenants", "globex" } }
    defer(function() srv:stop() end)
    local function call(tenant)
      local c = lh.client { host = "127.0.0.1", port = srv.port, tenant = tenant, timeout = 5 }
      local ev, err, code = c:put_external_event { wf_run_id = "w", external_event_def_name = DEF }
      c:close()
      return ev, err, code
    end
    assert(call("acme"))
    assert(call("globex"))
    assert(call(nil))
    local ev, err, code = call("evil")
    assert.is_nil(ev)
    assert.equal("PERMISSION_DENIED", code)
    assert.equal("Tenant not allowed", err.message)
    assert.equal("PERMISSION_DENIED", select(3, call("ACME"))) -- exact match
    -- never retried, and nothing stored
    local c = lh.client { host = "127.0.0.1", port = srv.port, tenant = "evil" }
    local none, err2 = c:post_event("w", DEF, 1, { retry = { sleep = function() error("no retry expected") end } })
    c:close()
    assert.is_nil(none)
    assert.equal(1, err2.attempts)
    local st = srv:stats()
    assert.equal(3, st.events)
    assert.equal(3, st.denied)
  end)

  it("without 'default' in the list, a client that sends no tenant is refused", function()
    local srv = devserver.start { defs = { DEF }, args = { "--tenants", "acme" } }
    defer(function() srv:stop() end)
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    defer(function() c:close() end)
    local ev, _, code = c:get_external_event_def(DEF)
    assert.is_nil(ev)
    assert.equal("PERMISSION_DENIED", code)
  end)
end)

describe("bearer tokens (--require-token), checked with grpc-probe", function()
  it("answers UNAUTHENTICATED 'Token is empty' / 'Token is not active' like the real server", function()
    local srv = devserver.start { defs = { DEF }, args = { "--require-token", "t-one", "--require-token", "t-two" } }
    defer(function() srv:stop() end)
    local function call(auth)
      return p(srv, { target = "127.0.0.1:" .. srv.port, metadata = auth and { authorization = auth } or nil })
    end
    local r = call(nil)
    assert.same({ "UNAUTHENTICATED", "Token is empty" }, { r.code, r.message })
    r = call("Bearer ")
    assert.same({ "UNAUTHENTICATED", "Token is empty" }, { r.code, r.message })
    r = call("Bearer t-three")
    assert.same({ "UNAUTHENTICATED", "Token is not active" }, { r.code, r.message })
    assert.equal("OK", call("Bearer t-one").code)
    assert.equal("OK", call("t-two").code) -- bare token, as the Python SDK sends it
    -- the Lua client without a token is refused the same way
    local c = lh.client { host = "127.0.0.1", port = srv.port }
    local ev, err, code = c:get_external_event_def(DEF)
    c:close()
    assert.is_nil(ev)
    assert.equal("UNAUTHENTICATED", code)
    assert.equal("Token is empty", err.message)
  end)
end)

describe("the OAuth token endpoint (spec/support/token_server.py) with --token-file", function()
  it("issues tokens for the right client only; the dev server accepts them until they expire", function()
    local file = os.tmpname()
    local ts = token_server.start { client_id = "lua-client", client_secret = "s3cr:t&+", expires_in = 1.5,
                                    token_file = file }
    local srv = devserver.start { defs = { DEF }, args = { "--token-file", file } }
    defer(function()
      srv:stop()
      ts:stop()
      os.remove(file)
    end)
    local function call(tok)
      return p(srv, { target = "127.0.0.1:" .. srv.port, metadata = { authorization = "Bearer " .. tok } })
    end
    assert.is_nil(ts:fetch("lua-client", "wrong"))
    local reply = assert(ts:fetch())
    assert.equal("Bearer", reply.token_type)
    assert.equal(1.5, reply.expires_in)
    local tok = reply.access_token
    assert.equal("OK", call(tok).code)
    assert.equal("Token is not active", call(tok .. "x").message)
    local st = ts:stats()
    assert.equal(2, st.requests)
    assert.equal(1, st.issued)
    assert.equal(1, st.failed)

    -- past expires_in (the dev server reads the expiry from the file), the token is refused
    local t0 = core.now()
    while call(tok).code == "OK" and core.now() - t0 < 10 do core.sleep(0.05) end
    assert.equal("Token is not active", call(tok).message)
    local tok2 = assert(ts:fetch()).access_token
    assert.not_equal(tok, tok2)
    assert.equal("OK", call(tok2).code)
    assert.equal(1, ts:revoke().revoked)
    assert.equal("Token is not active", call(tok2).message)
  end)
end)

describe("everything at once: mTLS + token + tenant", function()
  it("needs all three", function()
    local srv = devserver.start { defs = { DEF }, args = {
      "--tls-cert", certs .. "/server.pem", "--tls-key", certs .. "/server.key", "--tls-client-ca", certs .. "/ca.pem",
      "--require-token", "secret-token", "--tenants", "acme" } }
    defer(function() srv:stop() end)
    local base = { ca = "ca.pem", cert = "client.pem", key = "client.key" }
    local function with(md)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      o.metadata = md
      return p(srv, o)
    end
    assert.equal("OK", with({ authorization = "Bearer secret-token", tenantid = "acme" }).code)
    assert.equal("UNAUTHENTICATED", with({ tenantid = "acme" }).code)
    assert.equal("PERMISSION_DENIED", with({ authorization = "Bearer secret-token", tenantid = "other" }).code)
    -- authentication comes before the tenant check, as on the real server
    assert.equal("UNAUTHENTICATED", with({ authorization = "Bearer nope", tenantid = "other" }).code)
  end)
end)
