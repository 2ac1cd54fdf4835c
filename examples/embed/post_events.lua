-- Run by examples/embed/host.c, once per thread, each time in that thread's own lua_State:
--   host [--threads T] post_events.lua WF_RUN_ID EVENT_DEF [COUNT] [GUID_PREFIX]
-- Posts COUNT events (default 1) to WF_RUN_ID with content { thread = t, seq = i } and guid
-- GUID_PREFIX-t<t>-<i> (default prefix: a random one), retrying safely, and returns true only
-- if all of them were stored. Connects like every LittleHorse client: LHC_API_HOST,
-- LHC_API_PORT, LHC_TENANT_ID.
local thread, wf_run_id, def, count, prefix = ...
local lh = require "littlehorse" -- loaded in this state; other threads load their own copy

assert(wf_run_id and def, "usage: post_events.lua WF_RUN_ID EVENT_DEF [COUNT] [GUID_PREFIX]")
count = math.tointeger(tonumber(count or "1")) or error("COUNT must be an integer")
prefix = prefix or lh.new_guid()

-- One client per lua_State, made here and closed here (also on error: <close>).
local client <close> = lh.client { timeout = 5 }

local stored, duplicates = 0, 0
for i = 1, count do
  local guid = string.format("%s-t%d-%d", prefix, thread, i)
  local event, info = client:post_event(wf_run_id, def, { thread = thread, seq = i }, { guid = guid })
  if not event then
    return nil, string.format("event %d of %d (guid %s): %s", i, count, guid, tostring(info))
  end
  stored = stored + 1
  if info.duplicate then duplicates = duplicates + 1 end
end

io.write(string.format("thread %d: %d stored (%d already there) on %s\n", thread, stored, duplicates, client:target()))
return true
