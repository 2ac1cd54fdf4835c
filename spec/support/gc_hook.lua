-- busted --helper for the aggressive-GC suite (scripts/suites/gc.sh): the collector runs all
-- the time, so a C function that keeps a pointer into a Lua object it no longer anchors (a
-- string popped from the stack, a table only referenced from C), or a __gc that frees what is
-- still in use, fails fast instead of once a month in production.
--
--   LH_GC_MODE=incremental  (default) step multiplier 1000: the collector works ten times as
--                           fast as by default. (The 0s passed for pause and step size mean
--                           "unchanged" to Lua 5.4's collectgarbage, so those stay at 200% and
--                           8 KB: a pause of 1% and 2-byte steps made the suite ten times
--                           slower. The GC-torture run collects at every allocation instead.)
--   LH_GC_MODE=generational minor collections after every 1% of growth, a major one at 10%
--                           (Lua 5.4 only)
--   LH_GC_HOOK=N            also a full collection every N VM instructions (default 0: off)
--                           and a collector step every N/10
-- Under 5.3, 5.1 and LuaJIT (incremental only) the step multiplier is set to 1000 the same
-- way; LuaJIT runs no count hook in compiled code, so with LH_GC_HOOK its JIT is turned off.
local mode = os.getenv("LH_GC_MODE") or "incremental"
local lua54 = _VERSION == "Lua 5.4"
if mode == "generational" then
  assert(lua54, "LH_GC_MODE=generational needs Lua 5.4")
  collectgarbage("generational", 1, 10)
elseif lua54 then
  collectgarbage("incremental", 0, 1000, 0)
else
  collectgarbage("setstepmul", 1000)
end

local every = tonumber(os.getenv("LH_GC_HOOK") or "0")
if every > 0 then
  local n = 0
  local step = math.max(1, math.floor(every / 10))
  if rawget(_G, "jit") then jit.off() end
  debug.sethook(function()
    n = n + step
    if n >= every then
      n = 0
      collectgarbage("collect")
    else
      collectgarbage("step", 0)
    end
  end, "", step)
end
