-- Run by spec/outbox_fork_spec.lua under spec/support/forker.c: an outbox with posts in flight
-- at each fork. In the child, every method of the inherited outbox and of its jobs must raise
-- the fork error, tostring must still answer, and collecting or closing them (and the state)
-- must leave the parent's writer thread and file alone. The parent's jobs complete and its
-- next posts are stored. Prints "ok <check>" or "FAIL <check>: why" lines, then "rounds N".
--   forker outbox_fork.lua LUA_MODULES_ROOT PATH ROUNDS
local root, path, rounds = ...
local dir = rawget(_G, "jit") and "5.1" or _VERSION:match("%d+%.%d+") -- the tree's version directory
package.path = root .. "/share/lua/" .. dir .. "/?.lua;" .. root .. "/share/lua/" .. dir .. "/?/init.lua;" .. package.path
package.cpath = root .. "/lib/lua/" .. dir .. "/?.so;" .. package.cpath
local core = require "littlehorse.core"
rounds = tonumber(rounds)

local function say(ok, name, why)
  print((ok and "ok " or "FAIL ") .. name .. (ok and "" or ": " .. tostring(why)))
end

local function refuses(f)
  local ok, err = pcall(f)
  return not ok and tostring(err):find("cannot be used in forked process", 1, true) ~= nil, ok and "did not raise" or err
end

local function req(guid) return { wf_run_id = "fork-wf", external_event_def_name = "fork-event", guid = guid } end

local ob = core._outbox(path)
assert(ob:ready_async():wait())
local posted = 0
for r = 1, rounds do
  local jobs = {}
  for i = 1, 50 do jobs[i] = ob:post_async(req(r .. "-" .. i)) end -- the writer is busy with these
  local pid = fork()
  if pid == 0 then
    local all = true
    local calls = {
      post = function() return ob:post_async(req("child")) end,
      ready = function() return ob:ready_async() end,
      claim = function() return ob:claim_async(1) end,
      ack = function() return ob:ack_async({}) end,
      stats = function() return ob:stats_async() end,
      list = function() return ob:list_async("dead") end,
      requeue = function() return ob:requeue_async("all") end,
      purge = function() return ob:purge_async("all") end,
      watch = function() return ob:watch_async(1) end,
      poll = function() return ob:poll() end,
      fd = function() return ob:fd() end,
      in_flight = function() return ob:in_flight() end,
      job_wait = function() return jobs[1]:wait() end,
      job_done = function() return jobs[2]:done() end,
      job_id = function() return jobs[3]:id() end,
    }
    for name, f in pairs(calls) do
      local ok, why = refuses(f)
      if not ok then all = false; say(false, "child: " .. name .. " refuses", why) end
    end
    if all then say(true, "child: every method refuses") end
    local s = tostring(ob)
    say(s:find("made in process", 1, true) ~= nil, "child: tostring of the outbox", s)
    -- collect and close everything inherited: nothing of the parent's may be touched
    jobs[4]:close()
    ob:close()
    jobs, ob = nil, nil
    collectgarbage()
    collectgarbage()
    say(true, "child: close() and collectgarbage() return")
    -- an outbox of its own works in the child, on another file; on the parent's file it is
    -- refused (SQLite's per-process state of that file came with the fork)
    local mine = core._outbox(path .. ".child-" .. r)
    local g, err = mine:post_async(req("child-own-" .. r)):wait(10)
    say(g == "child-own-" .. r, "child: an outbox of its own posts", err)
    mine:close()
    local same = core._outbox(path)
    local v, e2, code = same:ready_async():wait(10)
    say(v == nil and code == "FAILED_PRECONDITION" and e2.message:find("had this file open when it forked this process", 1, true),
        "child: the parent's file is refused", e2)
    same:close()
    exit_child(0, r % 2 == 1)
  end
  local status = wait_child(pid)
  say(status == 0, "parent: the child exited normally", status)
  local good = true
  for i = 1, 50 do
    local g, err = jobs[i]:wait(10)
    if g ~= r .. "-" .. i then good = false; say(false, "parent: its posts complete", err) break end
  end
  local g, err = ob:post_async(req("after-" .. r)):wait(10)
  say(good and g == "after-" .. r, "parent: its posts complete and it posts after the fork", err)
  posted = posted + 51
end
local st = assert(ob:stats_async():wait(10))
say(st.pending == posted, "parent: the file holds every post", st.pending .. " ~= " .. posted)
ob:close()
print("rounds " .. rounds)
