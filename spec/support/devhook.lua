-- The dev server's own test hooks (docs/devserver.md, "Test hooks"): the DevServer service,
-- which makes a WfRun's EXTERNAL_EVENT node wait on a correlation key.
--   local devhook = require "devhook"
--   local r = devhook.start_waiting(srv.target, { key = "order-1", def = "paid", wf_run_id = "wf-1" })
--   r.code == "OK"; r.ids = { { wf_run_id = "wf-1", def = "paid", guid = "<32 hex>" }, ... }
--     (the ExternalEvents the call made at once: a CorrelatedEvent was already there)
--   devhook.stop_waiting(srv.target, { key =, def =, wf_run_id =, thread =, position = })
-- thread defaults to 0 and position to 1. Calls go through grpc-probe (spec/support/probe.lua);
-- the request bytes are written here with pbwire.
local pb = require "pbwire"
local probe = require "probe"

local M = {}
M.START = "/littlehorse.devserver.DevServer/StartWaiting"
M.STOP = "/littlehorse.devserver.DevServer/StopWaiting"

-- WaitingNodeRun { 1 key, 2 ExternalEventDefId { 1 name }, 3 NodeRunId { 1 WfRunId { 1 id },
-- 2 thread_run_number, 3 position } }
function M.waiting_node_run(o)
  local node = pb.len_field(1, pb.len_field(1, o.wf_run_id)) .. pb.varint_field(2, o.thread or 0)
               .. pb.varint_field(3, o.position or 1)
  return pb.len_field(1, o.key) .. pb.len_field(2, pb.len_field(1, o.def)) .. pb.len_field(3, node)
end

local function first(bytes, field)
  for _, f in ipairs(pb.fields(bytes)) do
    if f.field == field then return f.value end
  end
end

-- ExternalEventIdList results as { wf_run_id =, def =, guid = } (a root WfRunId's id).
function M.decode_ids(bytes)
  local ids = {}
  for _, f in ipairs(pb.fields(bytes or "")) do
    if f.field == 1 then
      ids[#ids + 1] = { wf_run_id = first(first(f.value, 1) or "", 1), def = first(first(f.value, 2) or "", 1),
                        guid = first(f.value, 3) }
    end
  end
  return ids
end

local function call(target, path, o)
  local r = probe.run { target = target, path = path, body = M.waiting_node_run(o), timeout = o.timeout or 10 }
  local c = r.calls[1]
  return { code = c.code, message = c.message, ids = c.code == "OK" and M.decode_ids(c.reply) or nil }
end

function M.start_waiting(target, o) return call(target, M.START, o) end
function M.stop_waiting(target, o) return call(target, M.STOP, o) end

return M
