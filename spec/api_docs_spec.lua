-- docs/api.md covers the public API, as luv's docs check does: every function and field of the
-- public modules, every method of the client and of call handles (taken at run time from the
-- Lua modules and from the C registration tables, so a new one cannot be missed) has an entry,
-- a heading that names it; and every name a heading gives exists. Names with a leading
-- underscore are not API and must be named as such in the text.
local lh = require "littlehorse"
local core = require "littlehorse.core"
local config = require "littlehorse.config"
local resty = require "littlehorse.resty"
local sh = require "sh"

local DOC = "docs/api.md"

local text = assert(sh.read_file(DOC))
local headings = {}
for line in text:gmatch("[^\n]+") do
  if line:match("^#+ ") then headings[#headings + 1] = line end
end

-- Is `name` (e.g. "lh.client", "client:poll") named in a heading, as a whole name?
local function has_entry(name)
  for _, h in ipairs(headings) do
    local i = h:find(name, 1, true)
    while i do
      local before, after = h:sub(i - 1, i - 1), h:sub(i + #name, i + #name)
      if not before:match("[%w_.:]") and not after:match("[%w_]") then return true end
      i = h:find(name, i + 1, true)
    end
  end
  return false
end

-- The public names of a module table: "prefix.key" for each key, sorted; underscore names apart.
local function names(prefix, t, sep)
  local public, private = {}, {}
  for k in pairs(t) do
    if type(k) == "string" then
      local list = k:sub(1, 1) == "_" and private or public
      list[#list + 1] = prefix .. (sep or ".") .. k
    end
  end
  table.sort(public)
  table.sort(private)
  return public, private
end

local registry = debug.getregistry()
local client = lh.client { port = 1, config_file = false }
local token_client = lh.client { port = 1, config_file = false, token = "t" }
local auth_call = token_client:put_external_event_async({ wf_run_id = "w", external_event_def_name = "d" })
local outbox_dir = io.popen("mktemp -d /tmp/lh-api-docs.XXXXXX"):read("*l")
local outbox = assert(lh.outbox(outbox_dir .. "/o.db"))

local SURFACES = {
  { "lh", lh },
  { "lh.retry", lh.retry },
  { "core", core },
  { "config", config },
  { "resty", resty },
  { "client", getmetatable(client).__index, ":" },                 -- the littlehorse client (Lua)
  { "client", registry["littlehorse.client"].__index, ":" },       -- the littlehorse.core client (C)
  { "h", registry["littlehorse.call"].__index, ":" },              -- call handles (C)
  { "h", getmetatable(auth_call).__index, ":" },                   -- call handles of a client with a token (Lua)
  { "outbox", getmetatable(outbox).__index, ":" },                 -- outboxes (Lua)
}

describe(DOC, function()
  teardown(function()
    auth_call:close()
    outbox:close()
    os.execute("rm -rf " .. outbox_dir)
    client:close()
    token_client:close()
  end)

  it("has an entry for every public function, method and field", function()
    local missing = {}
    for _, s in ipairs(SURFACES) do
      local public = names(s[1], s[2], s[3])
      for _, name in ipairs(public) do
        if not has_entry(name) then missing[#missing + 1] = name end
      end
    end
    assert.same({}, missing, "names without an entry in " .. DOC)
  end)

  it("says which names with a leading underscore are not API", function()
    local unnamed = {}
    for _, s in ipairs(SURFACES) do
      local _, private = names(s[1], s[2], s[3])
      for _, name in ipairs(private) do
        if not text:find(name, 1, true) then unnamed[#unnamed + 1] = name end
      end
    end
    assert.same({}, unnamed, "underscore names not mentioned in " .. DOC)
  end)

  it("names only what exists", function()
    local NIL_BY_DEFAULT = { ["resty.wake_dir"] = true } -- settings that exist once set
    local tables = { lh = lh, core = core, config = config, resty = resty, ["lh.retry"] = lh.retry }
    local methods = { client = getmetatable(client).__index, h = registry["littlehorse.call"].__index,
                      outbox = getmetatable(outbox).__index }
    local unknown = {}
    for _, h in ipairs(headings) do
      for code in h:gmatch("`([^`]+)`") do
        local mod, field = code:match("^([%a.]+)%.([%a_][%w_]*)")
        if mod and tables[mod] and tables[mod][field] == nil and not NIL_BY_DEFAULT[mod .. "." .. field] then
          unknown[#unknown + 1] = code
        end
        local obj, method = code:match("^(%a+):([%a_][%w_]*)")
        if obj and methods[obj] and methods[obj][method] == nil then unknown[#unknown + 1] = code end
      end
    end
    assert.same({}, unknown, "headings in " .. DOC .. " that name nothing")
  end)

  it("lists every module of the rock, public or not", function()
    local rockspec = assert(sh.read_file("littlehorse-client-0.1.0-1.rockspec"))
    local unlisted = {}
    for module in rockspec:gmatch('%["(littlehorse[%w_.]*)"%]%s*=') do
      if not text:find("`" .. module .. "`", 1, true) then unlisted[#unlisted + 1] = module end
    end
    assert.same({}, unlisted, "modules " .. DOC .. " does not mention")
  end)
end)
