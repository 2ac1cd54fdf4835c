-- Disk faults under the outbox: a full disk (a small tmpfs, and a file size limit), posts in
-- flight when it fills. Each post either returns its guid, and is then in the file, or
-- returns a clear error, and is then not in the file: nothing acknowledged that is not
-- stored, nothing half-written, no crash; and posting works again once there is room. And a full
-- disk under SQLite's temporary directory (not the outbox's) stops nothing.
-- (Read-only files, damaged files and newer layouts: spec/outbox_store_spec.lua.)
local core = require "littlehorse.core"
local devserver = require "devserver"
local sh = require "sh"
local rt = require "runtime"

local q = sh.q

local function run(cmd)
  return rt.execute(cmd) == true
end

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/lh-outbox.XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

-- Run spec/support/outbox_fill.lua in a child Lua of this runtime (prefix: a shell prelude such as a
-- ulimit); returns { ok = { guid = true }, failed = { {guid, code, message} }, done = bool, out = text }.
local function fill(prefix, path, n, bytes)
  local cmd = string.format("%s LUA_PATH=%s LUA_CPATH=%s exec %s spec/support/outbox_fill.lua %s %d %d 2>&1",
                            prefix, q(package.path), q(package.cpath), rt.lua, q(path), n, bytes or 2000)
  local p = io.popen("sh -c " .. q(cmd))
  local out = p:read("*a")
  p:close()
  local r = { ok = {}, failed = {}, out = out, nok = 0 }
  for line in out:gmatch("[^\n]+") do
    local g = line:match("^ok (%S+)$")
    if g then r.ok[g] = true; r.nok = r.nok + 1 end
    local fg, code, msg = line:match("^err (%S+) (%S+) (.*)$")
    if fg then r.failed[#r.failed + 1] = { fg, code, msg } end
    if line == "done" then r.done = true end
  end
  return r
end

-- The guids the file at path holds (read by a fresh outbox, with no limit on this process).
local function stored(path)
  local ob = core._outbox(path, { max_rows = 0, max_bytes = 0 })
  local set, n, after = {}, 0, 0
  repeat
    local rows = assert(ob:list_async("pending", { after = after, limit = 10000 }):wait(30))
    for _, r in ipairs(rows) do set[r.guid] = true; n = n + 1; after = r.id end
  until #rows == 0
  local st = assert(ob:stats_async():wait(30))
  ob:close()
  return set, n, st
end

-- Every guid whose post returned is stored, every failed one is not, and the counters agree.
local function check(r, path)
  assert.is_true(r.done, "the posting process did not finish normally:\n" .. r.out)
  assert.is_true(r.nok > 0, "nothing was stored before the disk filled:\n" .. r.out)
  assert.is_true(#r.failed > 0, "the disk never filled:\n" .. r.out:sub(1, 2000))
  local set, n, st = stored(path)
  for g in pairs(r.ok) do assert.is_true(set[g], g .. " was acknowledged but is not in the file") end
  for _, f in ipairs(r.failed) do
    assert.is_nil(set[f[1]], f[1] .. " failed (" .. f[2] .. ") but is in the file")
    assert.is_truthy(f[2] == "RESOURCE_EXHAUSTED" or f[2] == "INTERNAL", f[2] .. " " .. f[3])
    assert.matches("outbox .+: .+; the post was not stored", f[3])
  end
  assert.equal(r.nok, n)
  assert.equal(n, st.pending)
  assert.equal(n, st.accepted)
  return r.failed[1]
end

describe("outbox on a full disk", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() run("rm -rf " .. q(dir)) end)

  it("a small tmpfs: every acknowledged post is stored, every other one refused; room again, posts again", function()
    local mnt = dir .. "/small"
    assert(run("mkdir " .. q(mnt)))
    if not run("mount -t tmpfs -o size=256k tmpfs " .. q(mnt) .. " 2>/dev/null") then
      pending("cannot mount a tmpfs here (needs mount permission); the file size limit case runs instead")
      return
    end
    finally(function() run("umount " .. q(mnt)) end)
    local path = mnt .. "/full.db"
    local first = check(fill("", path, 400), path)
    assert.equal("RESOURCE_EXHAUSTED", first[2])
    assert.matches("the disk is full", first[3])
    -- more room: the same file takes posts again, nothing lost before
    assert(run("mount -o remount,size=4m " .. q(mnt)))
    local before, n = stored(path)
    local ob = core._outbox(path, { max_rows = 0, max_bytes = 0 })
    assert.equal("after", ob:post_async({ wf_run_id = "fill", external_event_def_name = "fill-event",
                                          content = "x", guid = "after" }):wait(30))
    ob:close()
    local now, m = stored(path)
    assert.equal(n + 1, m)
    for g in pairs(before) do assert.is_true(now[g]) end
  end)

  it("a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): the same, whatever error the writes get", function()
    local path = dir .. "/limited.db"
    -- ulimit -f counts 512-byte blocks in dash: 512 KiB
    check(fill("ulimit -f 1024; trap '' XFSZ;", path, 600), path)
  end)
end)

-- Delivery in a child process whose SQLite puts its temporary files (SQLITE_TMPDIR, read when
-- SQLite starts) on a full disk: spec/support/outbox_deliver.lua; returns its output.
local function deliver_with_full_tmp(tmp, path, port, what)
  local cmd = string.format("SQLITE_TMPDIR=%s LUA_PATH=%s LUA_CPATH=%s exec %s spec/support/outbox_deliver.lua %s %d %s 2>&1",
                            q(tmp), q(package.path), q(package.cpath), rt.lua, q(path), port, what or "")
  local p = io.popen("sh -c " .. q(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

describe("outbox with SQLite's temporary directory on a full disk", function()
  local dir, tmp
  before_each(function()
    dir = tmpdir()
    tmp = dir .. "/tmp"
    assert(run("mkdir " .. q(tmp)))
    if not run("mount -t tmpfs -o size=64k tmpfs " .. q(tmp) .. " 2>/dev/null") then tmp = nil; return end
    run("dd if=/dev/zero of=" .. q(tmp .. "/fill") .. " bs=4k 2>/dev/null")
  end)
  after_each(function()
    if tmp then run("umount " .. q(tmp)) end
    run("rm -rf " .. q(dir))
  end)

  -- 1,000 records of 2,000 bytes: one claim leases hundreds of KB of pages, and a requeue of all
  -- changes them all (before, SQLite copied them to a statement journal, which it spills to a
  -- temporary file past 64 KB: "database or disk is full" at every claim)
  it("claims, and requeues every dead letter, without a temporary file", function()
    if not tmp then
      pending("cannot mount a tmpfs here (needs mount permission)")
      return
    end
    local path = dir .. "/outbox.db"
    assert.is_true(fill("", path, 1000).done)
    -- the server does not know the def: every record becomes a dead letter
    local srv = devserver.start { defs = { "another-event" } }
    local out = deliver_with_full_tmp(tmp, path, srv.port)
    srv:stop()
    assert.matches("^delivered 0 dead 1000 pending 0 error nil\n$", out)
    srv = devserver.start { defs = { "fill-event" } }
    finally(function() srv:stop() end)
    out = deliver_with_full_tmp(tmp, path, srv.port, "requeue")
    assert.matches("^requeued 1000\ndelivered 1000 dead 0 pending 0 error nil\n$", out)
    assert.equal(1000, srv:stats().events)
  end)
end)
