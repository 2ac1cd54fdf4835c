-- Client configuration: options, LHC_* environment variables, the properties file, defaults,
-- their precedence, and every error. Anything that reads the environment runs in a child
-- process (Lua cannot set environment variables), with a private HOME and every LHC_* key
-- that the outer environment might hold removed.
local config = require "littlehorse.config"
local core = require "littlehorse.core"
local rt = require "runtime"

local LUA = os.getenv("LH_SPEC_LUA")
  or (rawget(_G, "jit") and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))

local sh = require "sh"
local q = sh.q

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(rt.execute("mkdir -p " .. q(p .. "/.config")))
  return p
end

local dirs = {}
local function new_home(file_text)
  local home = tmpdir()
  dirs[#dirs + 1] = home
  if file_text then write(home .. "/.config/littlehorse.config", file_text) end
  return home
end

-- Summary of a config as JSON-friendly data.
local CHILD = [[
package.path = %q
package.cpath = %q
local core = require "littlehorse.core"
local config = require "littlehorse.config"
local function arr(t) return setmetatable(t, core.array_mt) end
local ok, cfg = pcall(config.load, %s)
if not ok then io.write(core.json_encode({ error = tostring(cfg) })) return end
local out = {}
for _, k in ipairs({ "target", "host", "port", "protocol", "tenant", "timeout", "keepalive_time_ms",
                     "keepalive_timeout_ms", "max_receive_size", "lb_policy", "config_file" }) do
  out[k] = cfg[k]
end
out.warnings = arr(cfg.warnings)
out.sources = cfg.sources
out.tls = cfg.tls
out.auth = cfg.auth and cfg.auth.kind
out.auth_string = cfg.auth and tostring(cfg.auth)
out.string = tostring(cfg)
%s
io.write(core.json_encode(out))
]]

-- load(env, opts_source [, home [, extra_lua]]) -> the child's summary table
local function load(env, opts_src, home, extra)
  home = home or new_home()
  local script = os.tmpname()
  write(script, string.format(CHILD, package.path, package.cpath, opts_src or "nil", extra or ""))
  local cmd = { "env" }
  for key in pairs(config.KEYS) do cmd[#cmd + 1] = "-u " .. key end
  cmd[#cmd + 1] = "HOME=" .. q(home)
  for k, v in pairs(env or {}) do cmd[#cmd + 1] = k .. "=" .. q(v) end
  cmd[#cmd + 1] = LUA .. " " .. q(script) .. " 2>&1"
  local p = assert(io.popen(table.concat(cmd, " ")))
  local text = p:read("*a")
  p:close()
  os.remove(script)
  local out, err = core.json_decode(text)
  assert(type(out) == "table", "child output is not JSON: " .. tostring(err) .. "\n" .. text)
  return out
end

-- the error message of a failing load, without its position, which must be the line of the
-- child's pcall(config.load, ...) (line 6): misuse is blamed on the caller's line
local function load_error(env, opts_src, home)
  local out = load(env, opts_src, home)
  assert(out.error, "expected an error, got a config: " .. tostring(out.string))
  local msg = out.error:match("^[^\n]-:6: (.*)$")
  assert(msg, "not blamed on the caller's line: " .. out.error)
  return msg
end

local FAKE_CERT = "-----BEGIN CERTIFICATE-----\nMIIBfakecertdata\n-----END CERTIFICATE-----\n"
local KEY_BODY = "SUPERSECRETKEYMATERIAL"
local FAKE_KEY = "-----BEGIN PRIVATE KEY-----\n" .. KEY_BODY .. "\n-----END PRIVATE KEY-----\n"

teardown(function()
  for _, d in ipairs(dirs) do rt.execute("rm -rf " .. q(d)) end
end)

describe("config: defaults", function()
  it("are localhost:2023, PLAINTEXT, no tenant, keepalive 45000/5000 ms, pick_first, 10 s", function()
    local c = load({}, nil)
    assert.is_nil(c.error)
    assert.equal("localhost:2023", c.target)
    assert.equal("localhost", c.host)
    assert.equal(2023, c.port)
    assert.equal("PLAINTEXT", c.protocol)
    assert.is_nil(c.tenant)
    assert.equal(10, c.timeout)
    assert.equal(45000, c.keepalive_time_ms)
    assert.equal(5000, c.keepalive_timeout_ms)
    assert.is_nil(c.max_receive_size)
    assert.equal("pick_first", c.lb_policy)
    assert.is_nil(c.tls)
    assert.is_nil(c.auth)
    assert.is_nil(c.config_file) -- no ~/.config/littlehorse.config: fine
    assert.same({}, c.warnings)
    assert.equal("default", c.sources.host)
  end)

  it("are the same without HOME", function()
    local c = load({}, nil, "")
    assert.equal("localhost:2023", c.target)
  end)
end)

describe("config: environment", function()
  it("honours every LHC_* key", function()
    local home = new_home()
    write(home .. "/ca.pem", FAKE_CERT)
    write(home .. "/client.pem", FAKE_CERT)
    write(home .. "/client.key", FAKE_KEY)
    local c = load({
      LHC_API_HOST = "lh.example.com", LHC_API_PORT = "2024", LHC_API_PROTOCOL = "TLS",
      LHC_TENANT_ID = "acme", LHC_CA_CERT = home .. "/ca.pem", LHC_CLIENT_CERT = home .. "/client.pem",
      LHC_CLIENT_KEY = home .. "/client.key", LHC_OAUTH_CLIENT_ID = "my-id",
      LHC_OAUTH_CLIENT_SECRET = "my-secret", LHC_OAUTH_ACCESS_TOKEN_URL = "https://auth.example.com/token",
      LHC_GRPC_KEEPALIVE_TIME_MS = "60000", LHC_GRPC_KEEPALIVE_TIMEOUT_MS = "7000",
      LHC_GRPC_MAX_RECEIVE_MESSAGE_LENGTH = "-1",
    }, nil, home)
    assert.is_nil(c.error)
    assert.equal("lh.example.com:2024", c.target)
    assert.equal("TLS", c.protocol)
    assert.equal("acme", c.tenant)
    assert.same({ ca_pem = FAKE_CERT, cert_pem = FAKE_CERT, key_pem = FAKE_KEY }, c.tls)
    assert.equal("oauth", c.auth)
    assert.equal(60000, c.keepalive_time_ms)
    assert.equal(7000, c.keepalive_timeout_ms)
    assert.equal(-1, c.max_receive_size)
    assert.same({}, c.warnings)
    assert.equal("environment", c.sources.host)
    assert.equal("environment", c.sources.auth)
    -- the secret is nowhere in what can be printed
    assert.is_nil(c.string:find("my-secret", 1, true))
    assert.is_nil(c.auth_string:find("my-secret", 1, true))
    assert.matches("my-id", c.auth_string, 1, true)
  end)

  it("treats empty variables as unset", function()
    local c = load({ LHC_API_HOST = "", LHC_TENANT_ID = "" }, nil)
    assert.equal("localhost:2023", c.target)
    assert.is_nil(c.tenant)
  end)

  it("puts IPv6 literals in brackets", function()
    assert.equal("[::1]:2023", load({ LHC_API_HOST = "::1" }).target)
  end)

  it("is what lh.client() uses with no arguments", function()
    local c = load({ LHC_API_HOST = "127.0.0.1", LHC_API_PORT = "1", LHC_TENANT_ID = "t" }, nil, nil,
      'local lh = require "littlehorse"; local cl = lh.client(); out.client = tostring(cl); cl:close()')
    assert.matches("^littlehorse.client: 0x%x+ %(127%.0%.0%.1:1, tenant t%)$", c.client)
  end)
end)

describe("config: properties file", function()
  local FILE = table.concat({
    "# LittleHorse client config",
    "! a bang comment",
    "   LHC_API_HOST = file-host   ",
    "LHC_API_PORT:3000",
    "LHC_TENANT_ID   file-tenant",
    "LHC_GRPC_KEEPALIVE_TIME_MS=20000",
    "LHW_TASK_WORKER_ID=ignored-worker-key",
    "LHC_SOMETHING_ELSE=ignored",
    "",
  }, "\r\n")

  it("is read from ~/.config/littlehorse.config (Java properties, comments, trimming)", function()
    local home = new_home(FILE)
    local c = load({}, nil, home)
    assert.is_nil(c.error)
    assert.equal("file-host:3000", c.target)
    assert.equal("file-tenant", c.tenant)
    assert.equal(20000, c.keepalive_time_ms)
    assert.equal(home .. "/.config/littlehorse.config", c.config_file)
    assert.equal(home .. "/.config/littlehorse.config", c.sources.host)
  end)

  it("can be named with config_file, which then must exist; config_file = false skips the default", function()
    local home = new_home(FILE)
    write(home .. "/other.config", "LHC_API_HOST=other-host\n")
    local c = load({}, string.format("{ config_file = %q }", home .. "/other.config"), home)
    assert.equal("other-host:2023", c.target) -- only the named file is read
    assert.is_nil(c.tenant)
    c = load({}, "{ config_file = false }", home)
    assert.equal("localhost:2023", c.target)
    local err = load_error({}, string.format("{ config_file = %q }", home .. "/missing.config"), home)
    assert.equal("bad argument #1 to 'client' (config_file: cannot read the file (" .. home
                 .. "/missing.config: No such file or directory))", err)
  end)

  it("is an error when the default file exists but cannot be read", function()
    local home = new_home()
    assert(rt.execute("mkdir " .. q(home .. "/.config/littlehorse.config"))) -- a directory
    local err = load_error({}, nil, home)
    assert.matches("^littlehorse: cannot read the config file " .. home:gsub("%p", "%%%0")
                   .. "/%.config/littlehorse%.config %(", err)
  end)

  it("reports bad values with the file's path", function()
    local home = new_home("LHC_API_PROTOCOL=SSL\n")
    local path = home .. "/.config/littlehorse.config"
    assert.equal("littlehorse: LHC_API_PROTOCOL=SSL (from " .. path .. "): expected PLAINTEXT or TLS",
                 load_error({}, nil, home))
  end)

  it("parses Java properties: separators, escapes, continuations, last one wins", function()
    local p = config.parse_properties(table.concat({
      "\239\187\191a=1",                  -- BOM
      "b : two words  ",
      "c\tthree",
      "d=x\\",
      "    y\\",
      "    z",
      "e=tab\\there\\u00e9\\\\",
      "f",
      "g=",
      "h=first",
      "h=second",
      "i\\=j=k",
      "  # not = a key",
      "url=http://host:8080/token?x=1",
    }, "\n"))
    assert.same({ a = "1", b = "two words", c = "three", d = "xyz", e = "tab\there\195\169\\", f = "", g = "",
                  h = "second", ["i=j"] = "k", url = "http://host:8080/token?x=1" }, p)
  end)
end)

describe("config: precedence", function()
  it("is option > environment > file > default, per setting", function()
    local home = new_home("LHC_API_HOST=file-host\nLHC_API_PORT=1111\nLHC_TENANT_ID=file-tenant\n"
                          .. "LHC_GRPC_KEEPALIVE_TIMEOUT_MS=9000\n")
    local c = load({ LHC_API_HOST = "env-host", LHC_TENANT_ID = "env-tenant" }, '{ tenant = "opt-tenant" }', home)
    assert.equal("env-host:1111", c.target)
    assert.equal("opt-tenant", c.tenant)
    assert.equal(9000, c.keepalive_timeout_ms)
    assert.equal(45000, c.keepalive_time_ms)
    local file = home .. "/.config/littlehorse.config"
    assert.same({ host = "environment", port = file, target = "default", tenant = "option",
                  protocol = "default", keepalive_time_ms = "default", keepalive_timeout_ms = file,
                  max_receive_size = "default" }, c.sources)
  end)

  it("lets target replace host and port from every source", function()
    local c = load({ LHC_API_HOST = "env-host", LHC_API_PORT = "9" }, '{ target = "ipv4:127.0.0.1:1,127.0.0.1:2", lb_policy = "round_robin" }')
    assert.equal("ipv4:127.0.0.1:1,127.0.0.1:2", c.target)
    assert.equal("round_robin", c.lb_policy)
    assert.is_nil(c.host)
  end)

  it("lets an explicit token or oauth = false replace OAuth from the environment", function()
    local env = { LHC_OAUTH_CLIENT_ID = "id", LHC_OAUTH_CLIENT_SECRET = "s", LHC_OAUTH_ACCESS_TOKEN_URL = "http://127.0.0.1:1/t" }
    assert.equal("oauth", load(env).auth)
    assert.equal("static", load(env, '{ token = "abc" }').auth)
    assert.equal("function", load(env, '{ token = function() return "abc" end }').auth)
    assert.is_nil(load(env, "{ oauth = false }").auth)
  end)

  it("merges the OAuth keys across environment and file", function()
    local home = new_home("LHC_OAUTH_CLIENT_ID=file-id\nLHC_OAUTH_ACCESS_TOKEN_URL=http://127.0.0.1:1/token\n")
    local c = load({ LHC_OAUTH_CLIENT_SECRET = "env-secret" }, nil, home)
    assert.equal("oauth", c.auth)
    assert.matches("client_id file-id", c.auth_string, 1, true)
  end)
end)

describe("config: TLS", function()
  it("reads CA, client cert and key as PEM text (options may give PEM text directly)", function()
    local home = new_home()
    write(home .. "/ca.pem", FAKE_CERT)
    local c = load({}, string.format('{ protocol = "TLS", ca_cert = %q, client_cert = %q, client_key = %q, server_name = "lh.test" }',
                                     home .. "/ca.pem", FAKE_CERT, FAKE_KEY), home)
    assert.is_nil(c.error)
    assert.same({ ca_pem = FAKE_CERT, cert_pem = FAKE_CERT, key_pem = FAKE_KEY, server_name = "lh.test" }, c.tls)
    assert.is_nil(c.string:find(KEY_BODY, 1, true))
    assert.matches("mtls", c.string, 1, true)
  end)

  it("uses the system roots when no CA is given", function()
    local c = load({ LHC_API_PROTOCOL = "TLS" })
    assert.same({}, c.tls)
    assert.matches("ca=system", c.string, 1, true)
  end)

  it("warns about and ignores certificate settings from the environment with PLAINTEXT", function()
    local c = load({ LHC_CA_CERT = "/nonexistent/ca.pem" })
    assert.is_nil(c.tls)
    assert.same({ "littlehorse: LHC_CA_CERT is ignored: the protocol is PLAINTEXT" }, c.warnings)
  end)

  it("refuses certificate options with PLAINTEXT", function()
    assert.equal([[bad argument #1 to 'client' (ca_cert: needs protocol = "TLS")]], load_error({}, '{ ca_cert = "/x" }'))
    assert.equal([[bad argument #1 to 'client' (server_name: needs protocol = "TLS")]], load_error({}, '{ server_name = "x" }'))
  end)

  it("needs both client cert and key", function()
    local home = new_home()
    write(home .. "/c.pem", FAKE_CERT)
    assert.equal("littlehorse: LHC_CLIENT_CERT (from the environment) is set but client_key / LHC_CLIENT_KEY is not: "
                 .. "mutual TLS needs both",
                 load_error({ LHC_API_PROTOCOL = "TLS", LHC_CLIENT_CERT = home .. "/c.pem" }, nil, home))
    assert.equal("littlehorse: LHC_CLIENT_KEY (from the environment) is set but client_cert / LHC_CLIENT_CERT is not: "
                 .. "mutual TLS needs both",
                 load_error({ LHC_API_PROTOCOL = "TLS", LHC_CLIENT_KEY = home .. "/c.pem" }, nil, home))
    assert.equal("bad argument #1 to 'client' (client_key: mutual TLS needs both client_cert and client_key)",
                 load_error({}, string.format('{ protocol = "TLS", client_key = %q }', FAKE_KEY)))
  end)

  it("names the key and the path of a file that cannot be read or is not PEM, never its content", function()
    local home = new_home()
    write(home .. "/notpem", "hello " .. KEY_BODY)
    write(home .. "/cert.pem", FAKE_CERT)
    local env = { LHC_API_PROTOCOL = "TLS", LHC_CA_CERT = home .. "/missing.pem" }
    assert.equal("littlehorse: LHC_CA_CERT=" .. home .. "/missing.pem (from the environment): cannot read the file ("
                 .. home .. "/missing.pem: No such file or directory)", load_error(env, nil, home))
    env.LHC_CA_CERT = home .. "/notpem"
    local err = load_error(env, nil, home)
    assert.equal("littlehorse: LHC_CA_CERT=" .. home .. "/notpem (from the environment): the file is not PEM (no -----BEGIN line)", err)
    env = { LHC_API_PROTOCOL = "TLS", LHC_CLIENT_CERT = home .. "/cert.pem", LHC_CLIENT_KEY = home .. "/cert.pem" }
    assert.equal("littlehorse: LHC_CLIENT_KEY=" .. home .. "/cert.pem (from the environment): the file holds no PEM private key",
                 load_error(env, nil, home))
    assert.equal("bad argument #1 to 'client' (ca_cert: cannot read the file (/nonexistent: No such file or directory))",
                 load_error({}, '{ protocol = "TLS", ca_cert = "/nonexistent" }'))
  end)
end)

describe("config: errors", function()
  local function env_error(key, value, msg)
    assert.equal(string.format("littlehorse: %s=%s (from the environment): %s", key, value, msg),
                 load_error({ [key] = value }))
  end

  it("names the setting and its source for every bad environment value", function()
    env_error("LHC_API_PROTOCOL", "SSL", "expected PLAINTEXT or TLS")
    env_error("LHC_API_PROTOCOL", "tls", "expected PLAINTEXT or TLS") -- case as upstream: exact
    env_error("LHC_API_PORT", "abc", "expected a port number 1-65535")
    env_error("LHC_API_PORT", "70000", "expected a port number 1-65535")
    env_error("LHC_API_PORT", "0", "expected a port number 1-65535")
    env_error("LHC_API_HOST", "a b", "expected a host name or address (no spaces or slashes)")
    env_error("LHC_API_HOST", "h:2023", "a host name without a port; set LHC_API_PORT=2023 for the port")
    env_error("LHC_TENANT_ID", "t\195\169", "must be printable ASCII (it is sent as a gRPC header)")
    env_error("LHC_GRPC_KEEPALIVE_TIME_MS", "soon", "expected a positive number of milliseconds")
    env_error("LHC_GRPC_KEEPALIVE_TIMEOUT_MS", "-5", "expected a positive number of milliseconds")
    env_error("LHC_GRPC_MAX_RECEIVE_MESSAGE_LENGTH", "0", "expected a number of bytes (1-2147483647, or -1 for unlimited)")
    env_error("LHC_GRPC_MAX_RECEIVE_MESSAGE_LENGTH", "4MB", "expected a number of bytes (1-2147483647, or -1 for unlimited)")
  end)

  it("names the option for every bad option", function()
    local function opt_error(src, msg)
      assert.equal("bad argument #1 to 'client' (" .. msg .. ")", load_error({}, src))
    end
    opt_error('{ hots = "x" }', "hots: unknown option (did you mean host?)")
    opt_error('{ tiemout = 1 }', "tiemout: unknown option (did you mean timeout?)")
    opt_error('{ [1] = "x" }', "options are named host, port, target, protocol, tenant, ca_cert, client_cert, "
              .. "client_key, server_name, oauth, token, keepalive_time_ms, keepalive_timeout_ms, max_receive_size, "
              .. "max_send_size, lb_policy, timeout or config_file, got a number key")
    opt_error('"localhost"', "table of options expected, got string")
    opt_error('{ port = 0 }', "port: expected a port number 1-65535, got 0")
    opt_error('{ port = "2023" }', "port: expected a port number 1-65535, got string")
    opt_error('{ port = 1.5 }', "port: expected a port number 1-65535, got 1.5")
    opt_error('{ host = "h:2023" }', 'host: "h:2023" includes a port; give port = 2023, or target = "h:2023"')
    opt_error('{ host = "[::1]:2023" }', 'host: "[::1]:2023" includes a port; give port = 2023, or target = "[::1]:2023"')
    opt_error('{ max_send_size = "1MB" }', "max_send_size: expected a number of bytes, 1-2147483647, got string")
    opt_error('{ host = "" }', "host: must not be empty")
    opt_error('{ host = 1 }', "host: expected a string, got number")
    opt_error('{ target = "x:1", host = "y" }', "target: give either target or host and port, not both")
    opt_error('{ target = "a b" }', "target: must not contain spaces")
    opt_error('{ protocol = "tls" }', 'protocol: expected "PLAINTEXT" or "TLS", got "tls"')
    opt_error('{ tenant = "" }', "tenant: must not be empty")
    opt_error('{ timeout = 0 }', "timeout: expected a positive number of seconds")
    opt_error('{ timeout = "1" }', "timeout: expected a positive number of seconds")
    opt_error('{ lb_policy = "random" }', 'lb_policy: expected "pick_first" or "round_robin"')
    opt_error('{ keepalive_time_ms = 0 }', "keepalive_time_ms: expected a positive number of milliseconds, got 0")
    opt_error('{ max_receive_size = -2 }', "max_receive_size: expected a number of bytes (1-2147483647, or -1 for unlimited), got -2")
    opt_error('{ token = 5 }', "token: expected a string or a function, got number")
    opt_error('{ token = "" }', "token: must be a non-empty printable ASCII string")
    opt_error('{ token = "a", oauth = {} }', "token: give either token or oauth, not both")
    opt_error('{ oauth = "x" }', "oauth: expected a table { client_id =, client_secret =, token_url = }, got string")
    opt_error('{ oauth = { client_id = "i", client_secret = "s", token_url = "http://h/t", scope = "x" } }', "oauth: scope: unknown option (expected client_id, client_secret, token_url, ca_cert or timeout)")
    opt_error('{ oauth = { client_secret = "s", token_url = "http://h/t" } }', "oauth.client_id: expected a string, got nil")
    opt_error('{ oauth = { client_id = "i", token_url = "http://h/t" } }', "oauth: client_secret: expected a non-empty string")
    opt_error('{ oauth = { client_id = "i", client_secret = "s", token_url = "ftp://h/t" } }', "oauth.token_url: expected an http:// or https:// URL")
  end)

  it("needs all three OAuth keys or none, and never shows the secret", function()
    local err = load_error({ LHC_OAUTH_CLIENT_SECRET = "hunter2-secret", LHC_OAUTH_CLIENT_ID = "id" })
    assert.equal("littlehorse: OAuth needs all three of LHC_OAUTH_CLIENT_ID, LHC_OAUTH_CLIENT_SECRET and "
                 .. "LHC_OAUTH_ACCESS_TOKEN_URL, or none: LHC_OAUTH_CLIENT_ID (from the environment), "
                 .. "LHC_OAUTH_CLIENT_SECRET (from the environment) set, LHC_OAUTH_ACCESS_TOKEN_URL missing", err)
    assert.is_nil(err:find("hunter2", 1, true))
    err = load_error({ LHC_OAUTH_CLIENT_SECRET = "hunter2-secret", LHC_OAUTH_CLIENT_ID = "id",
                       LHC_OAUTH_ACCESS_TOKEN_URL = "not a url" })
    assert.equal("littlehorse: LHC_OAUTH_ACCESS_TOKEN_URL=not a url (from the environment): expected an http:// or https:// URL", err)
    err = load_error({}, '{ oauth = { client_id = "i", client_secret = "hunter2-secret", token_url = "x" } }')
    assert.is_nil(err:find("hunter2", 1, true))
  end)

  it("keeps secrets out of tostring and out of the provider's fields", function()
    local c = load({}, '{ token = "hunter2-token" }', nil,
      'out.fields = {}; for k, v in pairs(cfg.auth) do out.fields[#out.fields + 1] = tostring(k) .. "=" .. tostring(v) end')
    for _, s in ipairs({ c.string, c.auth_string, table.concat(c.fields, " ") }) do
      assert.is_nil(s:find("hunter2", 1, true), s)
    end
    c = load({}, '{ oauth = { client_id = "i", client_secret = "hunter2-secret", token_url = "https://u:hunter2-pw@h/t?k=hunter2-q" } }', nil,
      'out.fields = {}; for k, v in pairs(cfg.auth) do out.fields[#out.fields + 1] = tostring(k) .. "=" .. tostring(v) end')
    for _, s in ipairs({ c.string, c.auth_string, table.concat(c.fields, " ") }) do
      assert.is_nil(s:find("hunter2", 1, true), s)
    end
  end)
end)

describe("config: keepalive, message size, warnings", function()
  it("clamps keepalive_time_ms to 15000 and says so", function()
    local c = load({ LHC_GRPC_KEEPALIVE_TIME_MS = "1000" })
    assert.equal(15000, c.keepalive_time_ms)
    assert.same({ "littlehorse: LHC_GRPC_KEEPALIVE_TIME_MS=1000 is below the server's minimum ping interval; "
                  .. "using 15000 ms (the server closes connections that ping more often than every 15 s)" }, c.warnings)
    c = load({}, "{ keepalive_time_ms = 5000 }")
    assert.equal(15000, c.keepalive_time_ms)
    assert.matches("^littlehorse: keepalive_time_ms=5000 is below", c.warnings[1])
    assert.equal(15000, load({}, "{ keepalive_time_ms = 15000 }").keepalive_time_ms)
    assert.same({}, load({}, "{ keepalive_time_ms = 15000 }").warnings)
  end)

  it("takes max_receive_size in bytes, -1 for unlimited", function()
    assert.equal(8388608, load({ LHC_GRPC_MAX_RECEIVE_MESSAGE_LENGTH = "8388608" }).max_receive_size)
    assert.equal(-1, load({}, "{ max_receive_size = -1 }").max_receive_size)
  end)

  it("warns when a bearer token goes over PLAINTEXT or the secret over plain http", function()
    local c = load({ LHC_OAUTH_CLIENT_ID = "i", LHC_OAUTH_CLIENT_SECRET = "s",
                     LHC_OAUTH_ACCESS_TOKEN_URL = "http://auth.example.com/token" })
    assert.same({ "littlehorse: a bearer token will be sent over PLAINTEXT (set LHC_API_PROTOCOL=TLS to protect it)",
                  "littlehorse: the OAuth client secret will be sent over plain http to http://auth.example.com/token" },
                c.warnings)
    c = load({ LHC_API_PROTOCOL = "TLS", LHC_OAUTH_CLIENT_ID = "i", LHC_OAUTH_CLIENT_SECRET = "s",
               LHC_OAUTH_ACCESS_TOKEN_URL = "http://127.0.0.1:8080/token" })
    assert.same({}, c.warnings)
  end)
end)
