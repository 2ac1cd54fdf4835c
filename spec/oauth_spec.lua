-- Token providers: OAuth2 client credentials against a real local token endpoint
-- (spec/support/token_server.py), static tokens and user functions; and the libcurl
-- POST underneath (src/http.c).
local core = require "littlehorse.core"
local oauth = require "littlehorse.oauth"

-- The libcurl POST the OAuth provider uses (not API: core._http_post).
local http_post = core._http_post

-- The token endpoint (spec/support/token_server.py) as a process.
local token_server = require "token_server"
local ID, SECRET = "lua-client", "s3cr3t:with%odd&chars+\195\191"

local function start_token_server(o)
  o = o or {}
  return token_server.start { client_id = ID, client_secret = SECRET, expires_in = o.expires_in,
                              no_expires_in = o.no_expires_in }
end

local function provider(srv, extra)
  local o = { client_id = ID, client_secret = SECRET, token_url = srv.url .. "/token", http_post = http_post }
  for k, v in pairs(extra or {}) do o[k] = v end
  return oauth.client_credentials(o)
end

describe("http_post (libcurl)", function()
  local srv
  lazy_setup(function() srv = start_token_server() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("posts a form with HTTP Basic auth and returns status and body", function()
    local status, body = http_post(srv.url .. "/token", "grant_type=client_credentials",
                                   { user = oauth.form_encode(ID), password = oauth.form_encode(SECRET), timeout = 5 })
    assert.equal(200, status)
    local reply = core.json_decode(body)
    assert.equal("Bearer", reply.token_type)
    assert.matches("^tok%-%d+$", reply.access_token)
  end)

  it("encodes a table of form fields", function()
    local status = http_post(srv.url .. "/token", { grant_type = "client_credentials" },
                             { user = oauth.form_encode(ID), password = oauth.form_encode(SECRET) })
    assert.equal(200, status)
    status = http_post(srv.url .. "/token", { grant_type = "password" },
                       { user = oauth.form_encode(ID), password = oauth.form_encode(SECRET) })
    assert.equal(400, status)
  end)

  it("returns HTTP error statuses as replies, not as failures", function()
    local status, body = http_post(srv.url .. "/token", "grant_type=client_credentials", { user = "x", password = "y" })
    assert.equal(401, status)
    assert.equal("invalid_client", core.json_decode(body).error)
  end)

  it("returns nil and the reason when there is no reply", function()
    local probe = start_token_server()
    local url = probe.url
    probe:stop()
    local status, err = http_post(url .. "/token", "", { timeout = 2 })
    assert.is_nil(status)
    assert.matches("connect", err:lower(), 1, true)
    status, err = http_post("https://127.0.0.1:1/x", "", { timeout = 2, ca_file = "/nonexistent.pem" })
    assert.is_nil(status)
    assert.is_string(err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() http_post("ftp://x/", "") end)
    assert.has_error(function() http_post(srv.url, true) end)
    assert.has_error(function() http_post(srv.url, "", { timeout = -1 }) end)
    assert.has_error(function() http_post(srv.url, "", { user = 1 }) end)
    assert.has_error(function() http_post(srv.url, { a = 1 }) end)
  end)
end)

describe("oauth client credentials", function()
  local servers = {}
  local function server(o)
    local s = start_token_server(o)
    servers[#servers + 1] = s
    return s
  end
  lazy_teardown(function() for _, s in ipairs(servers) do s:stop() end end)

  it("fetches the token once for many calls", function()
    local srv = server()
    local p = provider(srv)
    local first = assert(p:token())
    assert.matches("^Bearer tok%-%d+$", first)
    for _ = 1, 500 do assert.equal(first, p:token()) end
    assert.equal(1, srv:stats().requests)
    assert.equal(1, p:stats().fetches)
  end)

  it("refreshes shortly before expiry", function()
    local srv = server { expires_in = 1 }
    local p = provider(srv)
    -- The token is fetched between t0 and t1 and lives 1 s: the refresh point (10%, 0.1 s,
    -- early) lies in [t0 + 0.9, t1 + 0.9]. Asked in a loop, with the time read around each ask:
    -- tok-1 must never come from an ask that began after t1 + 0.9, and tok-2 never from one
    -- that ended before t0 + 0.9. However late the process runs, these hold.
    local t0 = core.now()
    assert.equal("Bearer tok-1", p:token())
    local t1 = core.now()
    local tok
    repeat
      local before = core.now()
      tok = p:token()
      local after = core.now()
      if tok == "Bearer tok-1" then
        assert.is_true(before < t1 + 0.9, "tok-1 still served " .. (before - t1) .. " s after the fetch")
      else
        assert.equal("Bearer tok-2", tok)
        assert.is_true(after >= t0 + 0.9, "refreshed " .. (after - t0) .. " s after the fetch, before 0.9 s")
      end
      core.sleep(0.01)
    until tok ~= "Bearer tok-1" or core.now() > t1 + 5
    assert.equal("Bearer tok-2", tok)
    assert.equal(2, srv:stats().requests) -- cached between: one fetch per token
  end)

  it("refreshes at most 30 s early for long-lived tokens", function()
    local srv = server { expires_in = 3600 }
    local p = provider(srv)
    assert(p:token())
    local left = p:stats().expires_in
    assert.is_true(left > 3569 and left <= 3570, tostring(left))
  end)

  it("keeps a token without expires_in until invalidated", function()
    local srv = server { no_expires_in = true }
    local p = provider(srv)
    assert.equal("Bearer tok-1", p:token())
    assert.equal("Bearer tok-1", p:token())
    p:invalidate()
    assert.equal("Bearer tok-2", p:token())
  end)

  it("invalidate drops the token (only the one that failed, when named)", function()
    local srv = server()
    local p = provider(srv)
    local t1 = p:token()
    p:invalidate("Bearer some-older-token") -- another call's stale token: keep ours
    assert.equal(t1, p:token())
    p:invalidate(t1)
    local t2 = p:token()
    assert.not_equal(t1, t2)
    p:invalidate(t1) -- a second UNAUTHENTICATED for the old token does not drop the new one
    assert.equal(t2, p:token())
    assert.equal(2, srv:stats().requests)
  end)

  it("reports bad credentials clearly, without the secret, and does not hammer the endpoint", function()
    local srv = server()
    local p = oauth.client_credentials { client_id = ID, client_secret = "wrong-" .. SECRET,
                                         token_url = srv.url .. "/token", http_post = http_post }
    local tok, err = p:token()
    assert.is_nil(tok)
    assert.equal("littlehorse: OAuth token request to " .. srv.url .. "/token failed: HTTP 401: invalid_client "
                 .. "(Bad client credentials)", err)
    assert.is_nil(err:find("wrong-", 1, true))
    assert.is_nil(err:find(oauth.form_encode(SECRET), 1, true))
    -- within the failure hold the error is repeated without a request
    local _, err2 = p:token()
    assert.equal(err, err2)
    assert.equal(1, srv:stats().requests)
    assert.is_nil(tostring(p):find("wrong-", 1, true))
  end)

  it("reports an unreachable endpoint with its URL", function()
    local srv = server()
    local url = srv.url
    srv:stop()
    local p = oauth.client_credentials { client_id = ID, client_secret = SECRET, token_url = url .. "/token",
                                         http_post = http_post, timeout = 2 }
    local tok, err = p:token()
    assert.is_nil(tok)
    assert.matches("^littlehorse: OAuth token request to " .. url:gsub("%p", "%%%0") .. "/token failed: ", err)
  end)

  it("is shared by every config made with the same settings, so they share one token", function()
    local srv = server()
    local config = require "littlehorse.config"
    local o = { client_id = ID, client_secret = SECRET, token_url = srv.url .. "/token", timeout = 5 }
    local a = config.load { config_file = false, oauth = o }
    local b = config.load { config_file = false, oauth = o }
    assert.equal("oauth", a.auth.kind)
    assert.equal(a.auth, b.auth)
    local other = config.load { config_file = false, oauth = { client_id = ID, client_secret = "other", token_url = o.token_url } }
    assert.not_equal(a.auth, other.auth)
    assert.equal("Bearer tok-1", a.auth:token())
    assert.equal("Bearer tok-1", b.auth:token())
    assert.equal(1, srv:stats().requests)
  end)
end)

describe("oauth replies", function()
  local function fake(status, body)
    return function() return status, body end
  end
  local function token_with(post)
    return oauth.client_credentials { client_id = "id", client_secret = "the-secret", token_url = "https://u:pw@auth/t?x=1",
                                      http_post = post }:token()
  end
  local PREFIX = "littlehorse: OAuth token request to https://auth/t failed: "

  it("accepts a Bearer token with a string expires_in", function()
    assert.equal("Bearer abc", token_with(fake(200, '{"access_token":"abc","token_type":"bearer","expires_in":"60"}')))
  end)

  it("rejects malformed replies with a reason", function()
    local cases = {
      { fake(200, "not json"), "the reply is not a JSON object" },
      { fake(200, "[1]"), "the reply has no usable access_token" },
      { fake(200, '{"token_type":"Bearer"}'), "the reply has no usable access_token" },
      { fake(200, '{"access_token":"a\\nb"}'), "the reply has no usable access_token" },
      { fake(200, '{"access_token":"a","token_type":"mac"}'), 'token_type is "mac", expected Bearer' },
      { fake(200, '{"access_token":"a","expires_in":"soon"}'), "expires_in is not a number of seconds" },
      { fake(500, "oops the-secret leaked"), "HTTP 500: oops <hidden> leaked" },
      { fake(400, '{"error":"invalid_scope"}'), "HTTP 400: invalid_scope" },
      { fake(nil, "Could not resolve host: auth"), "Could not resolve host: auth" },
      { function() error("boom the-secret") end, "<hidden>" },
    }
    for _, c in ipairs(cases) do
      local tok, err = token_with(c[1])
      assert.is_nil(tok)
      assert.equal(PREFIX, err:sub(1, #PREFIX))
      assert.truthy(err:find(c[2], 1, true), err)
      assert.is_nil(err:find("the-secret", 1, true), err)
    end
  end)

  it("sends form-encoded Basic credentials and the client-credentials grant", function()
    local seen
    token_with(function(url, body, o) seen = { url = url, body = body, o = o }; return 200, '{"access_token":"x"}' end)
    assert.equal("https://u:pw@auth/t?x=1", seen.url)
    assert.equal("grant_type=client_credentials", seen.body)
    assert.equal("id", seen.o.user)
    assert.equal("the-secret", seen.o.password)
    assert.equal("a%3Ab%25c%20d", oauth.form_encode("a:b%c d"))
  end)
end)

describe("static and function tokens", function()
  it("static: always the same header, Bearer added once", function()
    local p = oauth.static("abc")
    assert.equal("Bearer abc", p:token())
    assert.equal("Bearer abc", oauth.static("Bearer abc"):token())
    p:invalidate()
    assert.equal("Bearer abc", p:token())
    assert.equal("static", p.kind)
    assert.is_nil(tostring(p):find("abc", 1, true))
  end)

  it("function: called for every token() without expires_in, cached with it", function()
    local n = 0
    local p = oauth.from_function(function() n = n + 1; return "t" .. n end)
    assert.equal("Bearer t1", p:token())
    assert.equal("Bearer t2", p:token())
    n = 0
    p = oauth.from_function(function() n = n + 1; return "t" .. n, 60 end)
    assert.equal("Bearer t1", p:token())
    assert.equal("Bearer t1", p:token())
    p:invalidate()
    assert.equal("Bearer t2", p:token())
  end)

  it("function: failures become nil, err", function()
    local tok, err = oauth.from_function(function() return nil, "no network" end):token()
    assert.is_nil(tok)
    assert.equal("littlehorse: the token function failed: no network", err)
    tok, err = oauth.from_function(function() error("kaput", 0) end):token()
    assert.is_nil(tok)
    assert.equal("littlehorse: the token function raised: kaput", err)
    tok, err = oauth.from_function(function() return 42 end):token()
    assert.is_nil(tok)
    assert.equal("littlehorse: the token function must return a non-empty printable ASCII string, got number", err)
  end)
end)
