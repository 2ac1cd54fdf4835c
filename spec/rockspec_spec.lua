-- The rock: the rockspec lists what the build needs (every C source, the generated code they
-- include, every Lua module, the CLI), names a versioned source, and a fresh clone's packed
-- rock installs into an empty tree offline; the installed module and CLI post to a dev server.
local devserver = require "devserver"
local shell = require "sh"
local rt = require "runtime"

local q = shell.q
local ROCKSPEC = "littlehorse-client-0.1.0-1.rockspec"
local DEF = "rock-event"

local function slurp(path) return assert(shell.read_file(path)) end

-- sh(cmd) -> status, stdout, stderr
local function sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = rt.execute(cmd .. " </dev/null >" .. q(out) .. " 2>" .. q(err))
  local o, e = slurp(out), slurp(err)
  os.remove(out); os.remove(err)
  return how == "exit" and code or 128 + code, o, e
end

local function lines(cmd)
  local status, out, err = sh(cmd)
  assert(status == 0, cmd .. " failed:\n" .. out .. err)
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local function load_rockspec(path)
  local env = {}
  assert(rt.load(slurp(path), "@" .. path, "t", env))()
  return env
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The names in a that are not in b, sorted.
local function missing(a, b)
  local out = {}
  for k in pairs(a) do if not b[k] then out[#out + 1] = k end end
  table.sort(out)
  return out
end

-- The generated sources the module needs: src/gen/X.pb-c.c for each src/gen header that
-- src/*.c and src/*.h include, directly or through other headers.
local function needed_gen_sources()
  local seen, need, queue = {}, {}, {}
  for _, f in ipairs(lines("ls src/*.c src/*.h")) do queue[#queue + 1] = f end
  while #queue > 0 do
    local file = table.remove(queue)
    if not seen[file] then
      seen[file] = true
      for inc in slurp(file):gmatch('#include%s+"([^"]+)"') do
        for _, dir in ipairs({ "src/", "src/gen/" }) do
          local f = io.open(dir .. inc, "rb")
          if f then
            f:close()
            queue[#queue + 1] = dir .. inc
            local gen = (dir .. inc):match("^(src/gen/.+%.pb%-c)%.h$")
            if gen then need[gen .. ".c"] = true end
            break
          end
        end
      end
    end
  end
  return need
end

describe("the rockspec", function()
  local spec = load_rockspec(ROCKSPEC)
  local core = spec.build.modules["littlehorse.core"]

  it("lists every src/*.c and exactly the generated code they include", function()
    local listed = set(core.sources)
    local want = set(lines("ls src/*.c"))
    for f in pairs(needed_gen_sources()) do want[f] = true end
    assert.same({}, missing(want, listed))  -- the build would lack them
    assert.same({}, missing(listed, want))  -- listed, but gone or not used
  end)

  it("follows includes through headers to find the generated code", function()
    -- service.pb-c.h pulls in the rest: the scan must follow includes through headers
    local need = needed_gen_sources()
    assert.is_true(need["src/gen/service.pb-c.c"])
    assert.is_true(need["src/gen/google/protobuf/timestamp.pb-c.c"])
    assert.is_nil(need["src/gen/devserver.pb-c.c"]) -- the dev server's own hooks
  end)

  it("installs every Lua module and the CLI", function()
    local modules = {}
    for name, m in pairs(spec.build.modules) do
      if type(m) == "string" then modules[m] = name end
    end
    local files = set(lines("ls lua/littlehorse/*.lua"))
    assert.same({}, missing(files, modules))
    for file, name in pairs(modules) do
      assert.truthy(io.open(file, "rb"), file)
      local expect = "littlehorse" .. (file:match("/init%.lua$") and "" or "." .. file:match("([^/]+)%.lua$"))
      assert.equal(expect, name)
    end
    assert.equal("bin/lh-put-event", spec.build.install.bin["lh-put-event"])
  end)

  it("names a versioned git source, a homepage and a busted test section, and passes luarocks lint", function()
    assert.matches("^git%+https://", spec.source.url)
    assert.equal("v" .. spec.version:match("^(.-)%-%d+$"), spec.source.tag)
    assert.matches("^https://", spec.description.homepage)
    assert.equal("busted", spec.test.type)
    local status, out, err = sh("luarocks --lua-version=5.4 lint " .. q(ROCKSPEC))
    assert(status == 0, out .. err)
  end)
end)

describe("the rock from a fresh clone", function()
  local srv, client, tmp

  lazy_setup(function()
    srv, client = devserver.with_client({ defs = { DEF } }, 5)
  end)
  lazy_teardown(function()
    devserver.release(srv, client)
    if tmp then os.execute("rm -rf " .. q(tmp)) end
  end)

  it("packs with luarocks pack, installs offline into an empty tree, and posts to the dev server", function()
    local status, head = sh("git rev-parse HEAD")
    if status ~= 0 then pending("not a git checkout: nothing to clone") return end
    head = head:match("%x+")
    local spec = load_rockspec(ROCKSPEC)
    tmp = lines("mktemp -d")[1]
    local clone = tmp .. "/littlehorse-client-lua"

    -- A release: the committed tree, tagged as the rockspec's source says.
    assert.equal(0, (sh(string.format("git clone -q --no-local . %s && git -C %s checkout -q --detach %s && git -C %s tag -f %s",
                                      q(clone), q(clone), head, q(clone), q(spec.source.tag)))))

    -- Offline: the rockspec's git URL is served from the clone (git's insteadOf), no LuaRocks
    -- server is configured, and any HTTP download goes to a closed port.
    local url = spec.source.url:gsub("^git%+", "")
    local gitconfig = tmp .. "/gitconfig"
    local f = assert(io.open(gitconfig, "w"))
    f:write(string.format('[url "file://%s"]\n\tinsteadOf = %s\n', clone, url))
    f:close()
    local offline = string.format("env GIT_CONFIG_GLOBAL=%s GIT_CONFIG_NOSYSTEM=1 http_proxy=http://127.0.0.1:9 "
                                  .. "https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 "
                                  .. "HTTPS_PROXY=http://127.0.0.1:9 ", q(gitconfig))
    local pack_dir, tree = tmp .. "/pack", tmp .. "/tree"
    assert.equal(0, (sh("mkdir -p " .. q(pack_dir) .. " " .. q(tmp .. "/no-server"))))
    local st, out, err = sh(string.format("cd %s && %s luarocks --lua-version=5.4 pack %s",
                                          q(pack_dir), offline, q(clone .. "/" .. ROCKSPEC)))
    assert(st == 0, "luarocks pack failed:\n" .. out .. err)
    local rock = pack_dir .. "/littlehorse-client-0.1.0-1.src.rock"
    assert.truthy(io.open(rock, "rb"), "no " .. rock .. ":\n" .. out)

    -- installed for the Lua running this spec (LuaJIT: Lua 5.1's tree, LuaJIT's headers)
    st, out, err = sh(string.format("cd %s && %s luarocks --lua-version=%s --tree %s --only-server=%s install %s%s",
                                    q(tmp), offline, rt.dir, q(tree), q("file://" .. tmp .. "/no-server"), q(rock),
                                    rt.jit and " LUA_INCDIR=/usr/include/luajit-2.1" or ""))
    assert(st == 0, "luarocks install failed:\n" .. out .. err)

    -- The installed module, and only it, posts an event.
    local script = [[
      local core_path = package.searchpath and package.searchpath("littlehorse.core", package.cpath)
                        or os.getenv("TREE") .. "/lib/lua/]] .. rt.dir .. [[/littlehorse/core.so" -- 5.1: the only path
      assert(core_path:find(os.getenv("TREE"), 1, true) == 1, core_path)
      local lh = require "littlehorse"
      assert(package.loaded["littlehorse.core"] == lh.core)
      local c = lh.client { config_file = false }
      local ev, err = c:put_external_event { wf_run_id = "rock-wf", external_event_def_name = "rock-event",
                                             guid = "from-module", content = { via = "module" } }
      assert(ev, tostring(err))
      io.write("stored ", ev.id.guid, " with ", core_path, "\n")
    ]]
    local env = string.format("env -i PATH=%s HOME=%s TREE=%s LHC_API_HOST=127.0.0.1 LHC_API_PORT=%d "
                              .. "LUA_PATH=%s LUA_CPATH=%s ",
                              q(os.getenv("PATH")), q(tmp), q(tree), srv.port,
                              q(tree .. "/share/lua/" .. rt.dir .. "/?.lua;" .. tree .. "/share/lua/" .. rt.dir .. "/?/init.lua"),
                              q(tree .. "/lib/lua/" .. rt.dir .. "/?.so"))
    st, out, err = sh(env .. rt.lua .. " -e " .. q(script))
    assert(st == 0, out .. err)
    assert.equal("stored from-module with " .. tree .. "/lib/lua/" .. rt.dir .. "/littlehorse/core.so\n", out)

    -- The installed CLI (luarocks' wrapper in the tree's bin/). It is written for Lua 5.4
    -- (docs/cli.md; 5.3 reads it too): a 5.1 or LuaJIT tree has it, and it does not run there.
    if not rt.subtype then
      assert.truthy(io.open(tree .. "/bin/lh-put-event"), "the CLI is not installed")
      local ev, gerr = client:get_external_event { wf_run_id = "rock-wf", external_event_def_name = DEF, guid = "from-module" }
      assert(ev, tostring(gerr))
      assert.same({ via = "module" }, ev.content)
      return
    end
    st, out, err = sh("env -i PATH=" .. q(os.getenv("PATH")) .. " HOME=" .. q(tmp) .. " LHC_API_HOST=127.0.0.1 LHC_API_PORT="
                      .. srv.port .. " " .. q(tree .. "/bin/lh-put-event")
                      .. " --wf-run-id rock-wf --event " .. DEF .. " --json '{\"via\":\"cli\"}' --guid from-cli")
    assert(st == 0, out .. err)

    for guid, via in pairs({ ["from-module"] = "module", ["from-cli"] = "cli" }) do
      local ev, gerr = client:get_external_event { wf_run_id = "rock-wf", external_event_def_name = DEF, guid = guid }
      assert(ev, guid .. ": " .. tostring(gerr))
      assert.same({ via = via }, ev.content)
    end
  end)
end)
