-- The wake socket's directory (src/wake.c, used by littlehorse.resty under nginx): only a
-- directory private to this process's user is used; one that someone else owns or can change,
-- or a symbolic link, is refused with the reason and left untouched; stale sockets are removed
-- only when they are ours and dead. Real directories, real sockets, real processes.
local core = require "littlehorse.core"
local shell = require "sh"
local rt = require "runtime"

local q = shell.q

local function sh(cmd)
  local ok = rt.execute(cmd)
  return ok == true or ok == 0
end

local function out(cmd)
  local p = io.popen(cmd)
  local s = p:read("*a")
  p:close()
  return (s:gsub("%s+$", ""))
end

local function exists(path) return sh("test -e " .. q(path) .. " -o -L " .. q(path)) end
local function mode_owner(path) return out("stat -c '%a %u' " .. q(path)) end
local ROOT = out("id -u") == "0"
local EUID = out("id -u")
local as_root = ROOT and it or pending

-- A pid that is surely gone: a shell that printed its own pid and exited.
local function dead_pid() return tonumber(out("sh -c 'echo $$'")) end

-- A stale socket: a child Lua process starts the wake server in dir, then ends without
-- stopping it (as a worker killed with -9 does), leaving lhwake.<its pid>.sock behind.
local function leave_stale_socket(dir)
  local cmd = string.format("%s -e %s", rt.lua, q(string.format(
    "package.cpath = %q; local c = require 'littlehorse.core'; print(assert(c._wake_start(%q))); os.exit(0, false)",
    package.cpath, dir)))
  local path = out(cmd)
  assert(path:match("lhwake%.%d+%.sock$"), path)
  return path
end

describe("wake socket directory", function()
  local base

  before_each(function()
    base = out("mktemp -d /tmp/lh-wake-spec.XXXXXX")
    assert(sh("chmod 755 " .. q(base)))
  end)
  after_each(function()
    core._wake_stop()
    sh("rm -rf " .. q(base))
  end)

  it("makes a missing directory 0700, its socket 0600, and removes the socket on stop", function()
    local dir = base .. "/wake"
    local path = assert(core._wake_start(dir))
    assert.equal(dir .. "/lhwake." .. out("echo $PPID") .. ".sock", path)
    assert.equal("700 " .. EUID, mode_owner(dir))
    assert.equal("600 " .. EUID, mode_owner(path))
    assert.equal(path, core._wake_start(dir)) -- one per process
    core._wake_stop()
    assert.is_false(exists(path))
  end)

  as_root("refuses a directory that another user made first (nobody), and leaves it alone", function()
    local dir = base .. "/wake"
    assert(sh("mkdir -m 700 " .. q(dir) .. " && chown nobody " .. q(dir)))
    local path, err, kind = core._wake_start(dir)
    assert.is_nil(path)
    assert.equal("unsafe", kind)
    assert.matches("owned by uid 65534, not by this process's user %(uid 0%)", err)
    assert.equal("", out("ls -A " .. q(dir)))
    assert.equal("700 65534", mode_owner(dir))
  end)

  it("refuses a symbolic link, even to a private directory of ours", function()
    local real, link = base .. "/real", base .. "/wake"
    assert(sh("mkdir -m 700 " .. q(real) .. " && ln -s " .. q(real) .. " " .. q(link)))
    local path, err, kind = core._wake_start(link)
    assert.is_nil(path)
    assert.equal("unsafe", kind)
    assert.matches("is a symbolic link", err)
    assert.equal("", out("ls -A " .. q(real)))
  end)

  it("refuses a directory of ours that others can write", function()
    local dir = base .. "/wake"
    assert(sh("mkdir " .. q(dir) .. " && chmod 777 " .. q(dir)))
    local path, err, kind = core._wake_start(dir)
    assert.is_nil(path)
    assert.equal("unsafe", kind)
    assert.matches("writable by other users %(mode 777%)", err)
  end)

  as_root("refuses a directory under a parent another user owns (they could swap it)", function()
    local parent = base .. "/theirs"
    assert(sh("mkdir -m 755 " .. q(parent) .. " && chown nobody " .. q(parent)))
    local path, err, kind = core._wake_start(parent .. "/wake")
    assert.is_nil(path)
    assert.equal("unsafe", kind)
    assert.matches("above the wake directory%) is owned by uid 65534", err)
    assert.is_false(exists(parent .. "/wake"))
  end)

  it("accepts a private directory under a sticky, world-writable parent (as /tmp is)", function()
    assert(sh("mkdir -m 1777 " .. q(base .. "/tmp")))
    assert(core._wake_start(base .. "/tmp/wake"))
  end)

  it("defaults to a directory per user under $TMPDIR", function()
    assert(sh("mkdir -m 1777 " .. q(base .. "/tmp")))
    local got = out(string.format("TMPDIR=%s %s -e %s", q(base .. "/tmp"), rt.lua, q(string.format(
      "package.cpath = %q; local c = require 'littlehorse.core'; print(c._wake_start()); c._wake_stop()", package.cpath))))
    assert.matches("^" .. (base .. "/tmp/littlehorse-wake-" .. EUID):gsub("%p", "%%%0") .. "/lhwake%.%d+%.sock$", got)
    assert.equal("700 " .. EUID, mode_owner(base .. "/tmp/littlehorse-wake-" .. EUID))
  end)

  it("removes only dead sockets of its own user, never other files", function()
    local dir = base .. "/wake"
    local stale = leave_stale_socket(dir)
    assert.is_true(exists(stale))
    -- not a socket, though named like one of a dead process
    local plain = dir .. "/lhwake." .. dead_pid() .. ".sock"
    assert(sh("echo keep > " .. q(plain)))
    -- a dead socket named for a live process (pid 1): left for that process
    local live = dir .. "/lhwake.1.sock"
    assert(os.rename(leave_stale_socket(dir), live))
    local foreign
    if ROOT then -- a dead socket owned by another user
      foreign = leave_stale_socket(dir)
      assert(sh("chown -h nobody " .. q(foreign)))
    end
    assert(core._wake_start(dir))
    assert.is_false(exists(stale))
    assert.is_true(exists(plain))
    assert.is_true(exists(live))
    if foreign then assert.is_true(exists(foreign)) end
  end)
end)

-- The channel itself (what littlehorse.resty's reader does under nginx, here with luasocket):
-- ids of completed calls and HTTP jobs arrive after one byte, nothing is registered per wait,
-- and only this process's own connection is taken.
describe("wake channel", function()
  local unix = require "socket.unix"
  local devserver = require "devserver"
  local lh = require "littlehorse"
  local base, srv, client

  lazy_setup(function()
    srv = devserver.start { defs = { "wake-ev" }, args = { "--delay-ms", "100" } }
    client = lh.client { host = "127.0.0.1", port = srv.port }
    client:fd() -- the completion thread: completions come from it, as under nginx
  end)
  lazy_teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function()
    base = out("mktemp -d /tmp/lh-wake-spec.XXXXXX")
    assert(sh("chmod 755 " .. q(base)))
  end)
  after_each(function()
    core._wake_stop()
    sh("rm -rf " .. q(base))
  end)

  local function attach()
    local path = assert(core._wake_start(base .. "/wake"))
    local sock = assert(unix.stream())
    assert(sock:connect(path))
    assert(core._wake_attach())
    assert.is_false(exists(path)) -- nothing left to find or clean up
    sock:settimeout(10)
    return sock
  end

  -- Read bytes and ids until every id of `want` came (each byte is answered by draining).
  local function collect(sock, want)
    local got, ids, bytes = {}, {}, 0
    local missing = 0
    for _ in pairs(want) do missing = missing + 1 end
    while missing > 0 do
      assert(sock:receive(1))
      bytes = bytes + 1
      repeat
        local n, lost = core._wake_ready(ids)
        assert.is_false(lost)
        for i = 1, n do
          if want[ids[i]] and not got[ids[i]] then
            got[ids[i]] = true
            missing = missing - 1
          end
        end
      until n < 256
    end
    return bytes
  end

  it("announces completed calls by id, after one byte per batch", function()
    local sock = attach()
    local want, hs = {}, {}
    for i = 1, 300 do
      hs[i] = client:put_external_event_async { wf_run_id = "w", external_event_def_name = "wake-ev", content = i }
      want[hs[i]:id()] = true
    end
    local bytes = collect(sock, want)
    -- 300 completions within ~100 ms of each other: far fewer bytes than ids
    assert.is_true(bytes < 300, bytes .. " bytes")
    for _, h in ipairs(hs) do
      assert.is_true(h:done()) -- announced only once done
      assert(h:wait(0))
    end
    sock:close()
  end)

  it("keeps ids completed before the reader attached, and signals them on attach", function()
    local path = assert(core._wake_start(base .. "/wake"))
    local h = client:put_external_event_async { wf_run_id = "w", external_event_def_name = "wake-ev" }
    local id = h:id()
    assert(h:wait(5))
    local sock = assert(unix.stream())
    assert(sock:connect(path))
    assert(core._wake_attach())
    sock:settimeout(10)
    collect(sock, { [id] = true })
    sock:close()
  end)

  it("announces HTTP jobs too", function()
    local sock = attach()
    local job = assert(core._http_post_async("http://127.0.0.1:1/token", "x=1", { timeout = 5 }))
    collect(sock, { [job:id()] = true })
    assert.is_true(job:done())
    local status, err = job:wait(0)
    assert.is_nil(status)
    assert.matches("onnect", err) -- nobody listens on port 1
    job:close()
    sock:close()
  end)

  it("takes only a connection from its own process", function()
    local path = assert(core._wake_start(base .. "/wake"))
    -- another process connects first and stays connected until we have tried
    local marker = base .. "/connected"
    local other = io.popen(string.format("%s -e %s", rt.lua, q(string.format(
      "package.cpath = %q; local u = require 'socket.unix'; local s = assert(u.stream()); " ..
      "assert(s:connect(%q)); io.open(%q, 'w'):close(); io.read('*l')", package.cpath, path, marker))), "w")
    local t0 = core.now()
    while not exists(marker) and core.now() - t0 < 10 do core.sleep(0.01) end
    assert.is_true(exists(marker), "the other process did not connect")
    local ok, err = core._wake_attach()
    assert.is_nil(ok)
    assert.matches("no connection from this process is waiting", err)
    local sock = assert(unix.stream())
    assert(sock:connect(path))
    assert(core._wake_attach())
    other:write("\n")
    other:close()
    sock:close()
  end)
end)
