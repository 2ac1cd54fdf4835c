-- littlehorse.config: client settings from options, LHC_* environment variables and the
-- properties file that lhctl and the official SDKs use (~/.config/littlehorse.config).
--
--   local cfg = require("littlehorse.config").load { tenant = "t" }
--
-- Precedence, per setting: explicit option > environment variable > properties file > default.
-- See docs/config.md for the keys, the options and the table this returns. Runs on Lua 5.1,
-- LuaJIT and 5.2-5.4 (no integer-only features).
local misuse = require "littlehorse.misuse"

local M = {}

M.DEFAULTS = {
  host = "localhost",
  port = 2023,
  protocol = "PLAINTEXT",
  timeout = 10,                -- seconds, per call (no LHC_* key: SDKs pass deadlines per call)
  keepalive_time_ms = 45000,
  keepalive_timeout_ms = 5000,
  lb_policy = "pick_first",
  max_send_size = 4 * 1024 * 1024, -- bytes: the server's default inbound limit
}
local MIN_KEEPALIVE_TIME_MS = 15000 -- the server answers pings more frequent than this with GOAWAY
local PROTOCOLS = { PLAINTEXT = true, TLS = true }
local LB_POLICIES = { pick_first = true, round_robin = true }

-- The keys honoured, and the option each one corresponds to.
M.KEYS = {
  LHC_API_HOST = "host",
  LHC_API_PORT = "port",
  LHC_API_PROTOCOL = "protocol",
  LHC_TENANT_ID = "tenant",
  LHC_CA_CERT = "ca_cert",
  LHC_CLIENT_CERT = "client_cert",
  LHC_CLIENT_KEY = "client_key",
  LHC_OAUTH_CLIENT_ID = "oauth.client_id",
  LHC_OAUTH_CLIENT_SECRET = "oauth.client_secret",
  LHC_OAUTH_ACCESS_TOKEN_URL = "oauth.token_url",
  LHC_GRPC_KEEPALIVE_TIME_MS = "keepalive_time_ms",
  LHC_GRPC_KEEPALIVE_TIMEOUT_MS = "keepalive_timeout_ms",
  LHC_GRPC_MAX_RECEIVE_MESSAGE_LENGTH = "max_receive_size",
}

-- Values never shown in messages.
local SECRET = { LHC_OAUTH_CLIENT_SECRET = true, ["oauth.client_secret"] = true, token = true }

local OPTIONS = misuse.names {
  "host", "port", "target", "protocol", "tenant", "ca_cert", "client_cert", "client_key", "server_name",
  "oauth", "token", "keepalive_time_ms", "keepalive_timeout_ms", "max_receive_size", "max_send_size",
  "lb_policy", "timeout", "config_file",
}
local OAUTH_OPTIONS = misuse.names { "client_id", "client_secret", "token_url", "ca_cert", "timeout" }

--- The default properties file: $HOME/.config/littlehorse.config (nil without HOME).
function M.default_config_file()
  local home = os.getenv("HOME")
  if home == nil or home == "" then return nil end
  return home .. "/.config/littlehorse.config"
end

---------------------------------------------------------------------------------------------
-- Errors. Every error names the setting and where it came from; secret values are hidden.

-- A thrown configuration error: a string, raised at the level the caller chose.
local Raise = {}

local function raise(msg) error(setmetatable({ msg = msg }, Raise), 0) end

-- The source descriptor of a value: { kind = "option" | "environment" | "file" | "default", path = file }
local function origin_text(src)
  if src.kind == "environment" then return "from the environment" end
  if src.kind == "file" then return "from " .. src.path end
  return "default"
end

local function shown(key, raw)
  if SECRET[key] then return "<hidden>" end
  return tostring(raw)
end

-- An error about one setting. key is the LHC_* key or the option name.
local function bad(setting, msg)
  local src = setting.src
  if src.kind == "option" then
    raise(string.format("bad argument #1 to 'client' (%s: %s)", setting.option, msg))
  end
  raise(string.format("littlehorse: %s=%s (%s): %s", setting.key, shown(setting.key, setting.raw),
                      origin_text(src), msg))
end

-- The name of a setting in text: the option name or the LHC_* key with its source.
local function named(setting)
  if setting.src.kind == "option" then return setting.option .. " (option)" end
  return setting.key .. " (" .. origin_text(setting.src) .. ")"
end

---------------------------------------------------------------------------------------------
-- Java properties (the subset lhctl and the SDKs write): KEY=VALUE or KEY: VALUE or KEY VALUE,
-- `#`/`!` comment lines, backslash line continuation, \t \n \r \f \uXXXX and \X escapes.
-- Keys and values are trimmed. Later lines win.

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local ESCAPES = { t = "\t", n = "\n", r = "\r", f = "\f" }

local function unescape(s)
  return (s:gsub("\\(u?)(%x?%x?%x?%x?)", function(u, hex)
    if u == "u" and #hex == 4 then return utf8_char(tonumber(hex, 16)) end
    return nil
  end):gsub("\\(.)", function(c) return ESCAPES[c] or c end))
end

--- Parses properties text -> { KEY = value } (keys as written).
function M.parse_properties(text)
  local out = {}
  local lines = {}
  text = text:gsub("\r\n?", "\n")
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- a UTF-8 BOM
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local i = 1
  while i <= #lines do
    local line = lines[i]:gsub("^[ \t\f]+", "")
    i = i + 1
    if line ~= "" and not line:find("^[#!]") then
      -- an odd number of trailing backslashes continues the line
      while #(line:match("\\*$")) % 2 == 1 and i <= #lines do
        line = line:sub(1, -2) .. lines[i]:gsub("^[ \t\f]+", "")
        i = i + 1
      end
      if #(line:match("\\*$")) % 2 == 1 then line = line:sub(1, -2) end
      -- the key ends at the first unescaped '=', ':' or whitespace
      local k_end, j = nil, 1
      while j <= #line do
        local c = line:sub(j, j)
        if c == "\\" then j = j + 2
        elseif c == "=" or c == ":" or c:find("^[ \t\f]") then k_end = j; break
        else j = j + 1 end
      end
      local key, value
      if k_end then
        key = line:sub(1, k_end - 1)
        -- the key ends at whitespace or at '=' / ':'; either way one separator may follow
        value = line:sub(k_end):gsub("^[ \t\f]*", "", 1):gsub("^[=:][ \t\f]*", "", 1)
      else
        key, value = line, ""
      end
      key = unescape(key)
      value = unescape((value:gsub("[ \t\f]+$", "")))
      out[key] = value
    end
  end
  return out
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data, rerr = f:read("*a")
  f:close()
  if data == nil then return nil, path .. ": " .. tostring(rerr) end
  return data
end

-- true when the file is there (readable or not), false when it does not exist.
local function exists(path)
  local f, _, code = io.open(path, "rb")
  if f then f:close(); return true end
  return code ~= 2 and code ~= 20 -- ENOENT, ENOTDIR
end

--- Reads a properties file -> { KEY = value } | nil, err.
function M.read_properties(path)
  local text, err = read_file(path)
  if not text then return nil, err end
  return M.parse_properties(text)
end

---------------------------------------------------------------------------------------------
-- Value checks. Each takes a setting { option=, key=, raw=, src= } and returns the value.

local function is_integral(x)
  return type(x) == "number" and x == math.floor(x) and x > -2^53 and x < 2^53
end

local function to_int(x)
  if math.tointeger then return math.tointeger(x) or x end
  return x
end

-- Strings from the environment or the file become numbers here; options must be numbers.
local function integer_value(s, lo, hi, what)
  local v = s.raw
  if s.src.kind ~= "option" then
    v = tostring(v):match("^%s*([+-]?%d+)%s*$")
    v = v and tonumber(v)
  elseif type(v) ~= "number" then
    bad(s, "expected " .. what .. ", got " .. type(v))
  end
  if not is_integral(v) or v < lo or (hi and v > hi) then
    bad(s, "expected " .. what .. (s.src.kind == "option" and ", got " .. tostring(v) or ""))
  end
  return to_int(v)
end

local function string_value(s)
  if type(s.raw) ~= "string" then bad(s, "expected a string, got " .. type(s.raw)) end
  if s.raw == "" then bad(s, "must not be empty") end
  if s.raw:find("\0", 1, true) then bad(s, "must not contain NUL bytes") end
  return s.raw
end

-- A gRPC metadata value: printable ASCII only.
local function header_value(s)
  local v = string_value(s)
  if v:find("[^\32-\126]") then bad(s, "must be printable ASCII (it is sent as a gRPC header)") end
  return v
end

local function host_value(s)
  local v = string_value(s)
  if v:find("[%s/]") then bad(s, "expected a host name or address (no spaces or slashes)") end
  -- "h:2023" or "[::1]:2023": a port where only a host goes (an IPv6 literal has two colons)
  local port = v:match("^[^:]*:(%d*)$") or v:match("^%[.*%]:(%d*)$")
  if port then
    if s.src.kind == "option" then
      bad(s, string.format("%q includes a port; give port = %s, or target = %q", v,
                           port ~= "" and port or "<port>", v))
    end
    bad(s, "a host name without a port; set LHC_API_PORT" .. (port ~= "" and "=" .. port or "") .. " for the port")
  end
  return v
end

local function url_value(s)
  local v = string_value(s)
  if not v:find("^[hH][tT][tT][pP][sS]?://[^/?#%s]") or v:find("%s") then
    bad(s, "expected an http:// or https:// URL")
  end
  return v
end

local function protocol_value(s)
  local v = s.raw
  if type(v) ~= "string" or not PROTOCOLS[v] then
    if s.src.kind == "option" then bad(s, 'expected "PLAINTEXT" or "TLS", got ' .. (type(v) == "string" and string.format("%q", v) or type(v))) end
    bad(s, "expected PLAINTEXT or TLS")
  end
  return v
end

-- Loads a certificate or key: options may give PEM text directly, else it is a file path.
local function pem_value(s, is_key)
  local v = string_value(s)
  if s.src.kind == "option" and v:find("-----BEGIN ", 1, true) then return v end
  local text, err = read_file(v)
  if not text then
    bad(s, "cannot read the file (" .. tostring(err) .. ")")
  end
  if not text:find("-----BEGIN ", 1, true) then
    bad(s, "the file is not PEM (no -----BEGIN line)")
  end
  if is_key and not text:find("-----BEGIN [%u ]*PRIVATE KEY-----") then
    bad(s, "the file holds no PEM private key")
  end
  return text
end

---------------------------------------------------------------------------------------------

local function opt_setting(name, value)
  return { option = name, key = name, raw = value, src = { kind = "option" } }
end

local config_mt

-- Loading runs these steps in order (the first bad setting raises; warnings keep this order):
-- the options table, the properties file, where to connect, the protocol, tenant and call
-- defaults, TLS, keepalive and message sizes, authentication. They share one loader:
--   { opts =, file_values =, file_src =, cfg =, warn = function(msg) }

local ENV_SRC = { kind = "environment" }

local function check_options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    raise("bad argument #1 to 'client' (table of options expected, got " .. type(opts) .. ")")
  end
  for k in pairs(opts) do
    if not OPTIONS.set[k] then raise("bad argument #1 to 'client' (" .. misuse.unknown(k, OPTIONS, "option") .. ")") end
  end
  return opts
end

-- The properties file: config_file = path (must be readable), false (none), or nil (the
-- default file, when there is one). Returns { KEY = value }, path.
local function read_config_file(opts)
  local cf = opts.config_file
  if cf ~= nil and cf ~= false then
    local s = opt_setting("config_file", cf)
    local path = string_value(s)
    local props, err = M.read_properties(path)
    if not props then bad(s, "cannot read the file (" .. tostring(err) .. ")") end
    return props, path
  elseif cf == nil then
    local path = M.default_config_file()
    if path and exists(path) then
      local props, err = M.read_properties(path)
      if not props then
        raise("littlehorse: cannot read the config file " .. path .. " (" .. tostring(err) .. ")")
      end
      return props, path
    end
  end
  return {}, nil
end

-- The highest-precedence value for an LHC_* key among environment and file, or nil. Empty
-- strings count as unset.
local function from_sources(ld, key)
  local v = os.getenv(key)
  if v ~= nil and v ~= "" then return { option = M.KEYS[key], key = key, raw = v, src = ENV_SRC } end
  v = ld.file_values[key]
  if v == nil then
    -- Python's SDK upper-cases keys from the file; accept any case
    for k, fv in pairs(ld.file_values) do
      if type(k) == "string" and k:upper() == key then v = fv end
    end
  end
  if v ~= nil and v ~= "" then return { option = M.KEYS[key], key = key, raw = v, src = ld.file_src } end
  return nil
end

-- The option if given, else the LHC_* key's value (when the option has one), else nil.
local function setting(ld, option, key)
  if ld.opts[option] ~= nil then return opt_setting(option, ld.opts[option]) end
  if key then return from_sources(ld, key) end
  return nil
end

-- cfg.sources[name]: where the setting came from ("option", "environment", the file's path
-- or "default").
local function record(ld, name, s)
  ld.cfg.sources[name] = s and (s.src.kind == "file" and s.src.path or s.src.kind) or "default"
end

-- target, or host and port (an IPv6 host gets brackets in the target).
local function where_to_connect(ld)
  local opts, cfg = ld.opts, ld.cfg
  if opts.target ~= nil then
    local s = opt_setting("target", opts.target)
    if opts.host ~= nil or opts.port ~= nil then
      bad(s, "give either target or host and port, not both")
    end
    local t = string_value(s)
    if t:find("%s") then bad(s, "must not contain spaces") end
    cfg.target = t
    record(ld, "target", s)
    return
  end
  local hs = setting(ld, "host", "LHC_API_HOST")
  local host = hs and host_value(hs) or M.DEFAULTS.host
  local ps = setting(ld, "port", "LHC_API_PORT")
  local port = ps and integer_value(ps, 1, 65535, "a port number 1-65535") or M.DEFAULTS.port
  cfg.host, cfg.port = host, port
  -- an IPv6 literal needs brackets in a gRPC target
  if host:find(":", 1, true) and not host:find("^%[") then host = "[" .. host .. "]" end
  cfg.target = host .. ":" .. port
  record(ld, "host", hs)
  record(ld, "port", ps)
  record(ld, "target", nil)
end

-- protocol, tenant, the default call timeout and the load-balancing policy.
local function connection_settings(ld)
  local opts, cfg = ld.opts, ld.cfg
  local prs = setting(ld, "protocol", "LHC_API_PROTOCOL")
  cfg.protocol = prs and protocol_value(prs) or M.DEFAULTS.protocol
  record(ld, "protocol", prs)

  local ts = setting(ld, "tenant", "LHC_TENANT_ID")
  cfg.tenant = ts and header_value(ts) or nil
  record(ld, "tenant", ts)

  if opts.timeout ~= nil then
    local s = opt_setting("timeout", opts.timeout)
    local t = opts.timeout
    if type(t) ~= "number" or not (t > 0) or t > 1e9 then bad(s, "expected a positive number of seconds") end
    cfg.timeout = t
  else
    cfg.timeout = M.DEFAULTS.timeout
  end

  if opts.lb_policy ~= nil then
    local s = opt_setting("lb_policy", opts.lb_policy)
    if type(opts.lb_policy) ~= "string" or not LB_POLICIES[opts.lb_policy] then
      bad(s, 'expected "pick_first" or "round_robin"')
    end
    cfg.lb_policy = opts.lb_policy
  else
    cfg.lb_policy = M.DEFAULTS.lb_policy
  end
end

-- Certificate settings need protocol TLS: from options that is an error, from the
-- environment or the file a warning (the SDKs ignore them with PLAINTEXT too).
local function tls_settings(ld)
  local opts, cfg = ld.opts, ld.cfg
  local ca = setting(ld, "ca_cert", "LHC_CA_CERT")
  local cert = setting(ld, "client_cert", "LHC_CLIENT_CERT")
  local key = setting(ld, "client_key", "LHC_CLIENT_KEY")
  local sn = opts.server_name ~= nil and opt_setting("server_name", opts.server_name) or nil
  if cfg.protocol ~= "TLS" then
    for _, s in ipairs({ ca or false, cert or false, key or false, sn or false }) do
      if s then
        if s.src.kind == "option" then bad(s, 'needs protocol = "TLS"') end
        ld.warn(s.key .. " is ignored: the protocol is PLAINTEXT")
      end
    end
    return
  end
  if (cert == nil) ~= (key == nil) then
    local have, missing = cert or key, cert and "client_key / LHC_CLIENT_KEY" or "client_cert / LHC_CLIENT_CERT"
    local msg = named(have) .. " is set but " .. missing .. " is not: mutual TLS needs both"
    if have.src.kind == "option" then bad(have, "mutual TLS needs both client_cert and client_key") end
    raise("littlehorse: " .. msg)
  end
  cfg.tls = {
    ca_pem = ca and pem_value(ca) or nil,
    cert_pem = cert and pem_value(cert) or nil,
    key_pem = key and pem_value(key, true) or nil,
    server_name = sn and host_value(sn) or nil,
  }
  record(ld, "ca_cert", ca)
  record(ld, "client_cert", cert)
  record(ld, "client_key", key)
end

-- Keepalive (never more often than the server allows) and the message size limits.
local function keepalive_and_sizes(ld)
  local opts, cfg = ld.opts, ld.cfg
  local kts = setting(ld, "keepalive_time_ms", "LHC_GRPC_KEEPALIVE_TIME_MS")
  local kt = kts and integer_value(kts, 1, nil, "a positive number of milliseconds") or M.DEFAULTS.keepalive_time_ms
  if kt < MIN_KEEPALIVE_TIME_MS then
    ld.warn(string.format("%s=%d is below the server's minimum ping interval; using %d ms (the server "
                          .. "closes connections that ping more often than every 15 s)",
                          kts.key, kt, MIN_KEEPALIVE_TIME_MS))
    kt = MIN_KEEPALIVE_TIME_MS
  end
  cfg.keepalive_time_ms = kt
  record(ld, "keepalive_time_ms", kts)
  local kos = setting(ld, "keepalive_timeout_ms", "LHC_GRPC_KEEPALIVE_TIMEOUT_MS")
  cfg.keepalive_timeout_ms = kos and integer_value(kos, 1, nil, "a positive number of milliseconds")
                             or M.DEFAULTS.keepalive_timeout_ms
  record(ld, "keepalive_timeout_ms", kos)
  local mrs = setting(ld, "max_receive_size", "LHC_GRPC_MAX_RECEIVE_MESSAGE_LENGTH")
  if mrs then
    local v = integer_value(mrs, -1, 2147483647, "a number of bytes (1-2147483647, or -1 for unlimited)")
    if v == 0 then bad(mrs, "expected a number of bytes (1-2147483647, or -1 for unlimited)") end
    cfg.max_receive_size = v
  end
  record(ld, "max_receive_size", mrs)
  if opts.max_send_size ~= nil then
    cfg.max_send_size = integer_value(opt_setting("max_send_size", opts.max_send_size), 1, 2147483647,
                                      "a number of bytes, 1-2147483647")
  else
    cfg.max_send_size = M.DEFAULTS.max_send_size
  end
end

-- token = string | function | false.
local function token_auth(ld, oauth)
  local tok = ld.opts.token
  local s = opt_setting("token", tok)
  if type(tok) == "string" then
    if tok == "" or tok:find("[^\32-\126]") then bad(s, "must be a non-empty printable ASCII string") end
    ld.cfg.auth = oauth.static(tok)
  elseif type(tok) == "function" then
    ld.cfg.auth = oauth.from_function(tok)
  elseif tok ~= false then
    bad(s, "expected a string or a function, got " .. type(tok))
  end
  record(ld, "auth", s)
end

-- oauth = { client_id =, client_secret =, token_url =, ca_cert =, timeout = } | false.
local function oauth_option_auth(ld, oauth)
  local o = ld.opts.oauth
  local s = opt_setting("oauth", o)
  if o ~= false then
    if type(o) ~= "table" then bad(s, "expected a table { client_id =, client_secret =, token_url = }, got " .. type(o)) end
    for k in pairs(o) do
      if not OAUTH_OPTIONS.set[k] then bad(s, misuse.unknown(k, OAUTH_OPTIONS, "option")) end
    end
    local id = string_value(opt_setting("oauth.client_id", o.client_id))
    local secret = o.client_secret
    if type(secret) ~= "string" or secret == "" then bad(s, "client_secret: expected a non-empty string") end
    local url = url_value(opt_setting("oauth.token_url", o.token_url))
    local ca_file
    if o.ca_cert ~= nil then
      ca_file = string_value(opt_setting("oauth.ca_cert", o.ca_cert))
      if not read_file(ca_file) then bad(opt_setting("oauth.ca_cert", ca_file), "cannot read the file") end
    end
    if o.timeout ~= nil and (type(o.timeout) ~= "number" or not (o.timeout > 0) or o.timeout > 1e6) then
      bad(opt_setting("oauth.timeout", o.timeout), "expected a positive number of seconds")
    end
    ld.cfg.auth = oauth.shared_client_credentials { client_id = id, client_secret = secret, token_url = url,
                                                    ca_file = ca_file, timeout = o.timeout }
  end
  record(ld, "auth", s)
end

-- LHC_OAUTH_*: all three, or none.
local function oauth_sources_auth(ld, oauth)
  local id = from_sources(ld, "LHC_OAUTH_CLIENT_ID")
  local secret = from_sources(ld, "LHC_OAUTH_CLIENT_SECRET")
  local url = from_sources(ld, "LHC_OAUTH_ACCESS_TOKEN_URL")
  if not (id or secret or url) then return end
  if not (id and secret and url) then
    local set, unset = {}, {}
    for _, pair in ipairs({ { "LHC_OAUTH_CLIENT_ID", id }, { "LHC_OAUTH_CLIENT_SECRET", secret },
                            { "LHC_OAUTH_ACCESS_TOKEN_URL", url } }) do
      if pair[2] then set[#set + 1] = named(pair[2]) else unset[#unset + 1] = pair[1] end
    end
    raise("littlehorse: OAuth needs all three of LHC_OAUTH_CLIENT_ID, LHC_OAUTH_CLIENT_SECRET and "
          .. "LHC_OAUTH_ACCESS_TOKEN_URL, or none: " .. table.concat(set, ", ") .. " set, "
          .. table.concat(unset, ", ") .. " missing")
  end
  ld.cfg.auth = oauth.shared_client_credentials { client_id = string_value(id), client_secret = secret.raw,
                                                  token_url = url_value(url) }
  record(ld, "auth", url)
end

-- A token (static or function) or OAuth client credentials, from the options or else from
-- LHC_OAUTH_*; then what the choice risks.
local function auth_settings(ld)
  local opts, cfg = ld.opts, ld.cfg
  local oauth = require "littlehorse.oauth"
  if opts.token ~= nil and opts.oauth ~= nil and opts.oauth ~= false then
    raise("bad argument #1 to 'client' (token: give either token or oauth, not both)")
  end
  if opts.token ~= nil then token_auth(ld, oauth)
  elseif opts.oauth ~= nil then oauth_option_auth(ld, oauth)
  else oauth_sources_auth(ld, oauth) end
  if cfg.auth and cfg.protocol ~= "TLS" then
    ld.warn("a bearer token will be sent over PLAINTEXT (set LHC_API_PROTOCOL=TLS to protect it)")
  end
  if cfg.auth and cfg.auth.token_url then
    local host = cfg.auth.token_url:match("^[hH][tT][tT][pP]://([^/?#]*)")
    host = host and host:gsub("^.*@", ""):gsub(":%d*$", ""):lower()
    if host and host ~= "localhost" and host ~= "[::1]" and not host:find("^127%.") then
      ld.warn("the OAuth client secret will be sent over plain http to " .. cfg.auth.token_url)
    end
  end
end

local function load_settings(opts)
  opts = check_options(opts)
  local file_values, file_path = read_config_file(opts)
  local warnings = {}
  local ld = {
    opts = opts,
    file_values = file_values,
    file_src = { kind = "file", path = file_path },
    cfg = { warnings = warnings, sources = {}, config_file = file_path },
    warn = function(msg) warnings[#warnings + 1] = "littlehorse: " .. msg end,
  }
  where_to_connect(ld)
  connection_settings(ld)
  tls_settings(ld)
  keepalive_and_sizes(ld)
  auth_settings(ld)
  return setmetatable(ld.cfg, config_mt)
end

-- tostring(cfg): the settings without secrets or PEM text.
config_mt = {
  __tostring = function(cfg)
    local parts = { "target=" .. tostring(cfg.target), "protocol=" .. tostring(cfg.protocol) }
    if cfg.tenant then parts[#parts + 1] = "tenant=" .. cfg.tenant end
    if cfg.tls then
      parts[#parts + 1] = "ca=" .. (cfg.tls.ca_pem and "custom" or "system")
      if cfg.tls.cert_pem then parts[#parts + 1] = "mtls" end
      if cfg.tls.server_name then parts[#parts + 1] = "server_name=" .. cfg.tls.server_name end
    end
    if cfg.auth then parts[#parts + 1] = "auth=" .. tostring(cfg.auth) end
    return "littlehorse.config{ " .. table.concat(parts, ", ") .. " }"
  end,
}

--- config.load(opts) -> cfg
-- Raises on any bad setting, blamed on the line that called into the library.
function M.load(opts)
  local ok, res = pcall(load_settings, opts)
  if ok then return res end
  if getmetatable(res) == Raise then misuse.raise(res.msg) end
  error(res, 0)
end

return M
