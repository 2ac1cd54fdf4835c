-- The app examples/embed/frame_loop.c drives, frame by frame, in its lua_State:
--   frame_loop frame_events.lua WF_RUN_ID EVENT_DEF COUNT PER_FRAME GUID_PREFIX [blocking]
-- Each frame starts up to PER_FRAME posts of COUNT in all (content { frame = n, seq = i },
-- guid GUID_PREFIX-<i>) with put_external_event_async; their on_done callbacks run inside
-- client:poll(0), which the host calls when client:fd() is readable. Nothing here waits on
-- the network. "blocking" posts with the blocking put_external_event instead, to show what
-- that costs a frame loop. Connects like every LittleHorse client: LHC_API_HOST,
-- LHC_API_PORT, LHC_TENANT_ID.
local wf_run_id, def, count, per_frame, prefix, mode = ...
local lh = require "littlehorse"

assert(wf_run_id and def and count and per_frame and prefix,
       "usage: frame_events.lua WF_RUN_ID EVENT_DEF COUNT PER_FRAME GUID_PREFIX [blocking]")
count = math.tointeger(tonumber(count)) or error("COUNT must be an integer")
per_frame = math.tointeger(tonumber(per_frame)) or error("PER_FRAME must be an integer")
local blocking = mode == "blocking"

local client = lh.client { timeout = 30 }
-- Connect at start-up, as a game loads its level: the first call of a channel sets it up.
assert(client:get_external_event_def(def))
local posted, stored, failed, max_in_flight = 0, 0, 0, 0
local first_error

local function on_done(event, err)
  if event then
    stored = stored + 1
  else
    failed = failed + 1
    first_error = first_error or tostring(err)
  end
end

local app = { fd = client:fd() }

function app.tick(frame)
  for _ = 1, per_frame do
    if posted == count then break end
    posted = posted + 1
    local request = { wf_run_id = wf_run_id, external_event_def_name = def,
                      guid = prefix .. "-" .. posted, content = { frame = frame, seq = posted } }
    if blocking then
      on_done(client:put_external_event(request))
    else
      client:put_external_event_async(request, { on_done = on_done })
    end
  end
  local n = client:in_flight()
  if n > max_in_flight then max_in_flight = n end
end

function app.deliver() return client:poll(0) end

function app.done() return stored + failed == count end

function app.report()
  return string.format("posted %d stored %d failed %d max_in_flight %d%s", posted, stored, failed,
                       max_in_flight, first_error and " first_error " .. first_error or ""),
         stored == count
end

return app
