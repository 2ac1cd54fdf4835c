-- LittleHorse messages written by hand with pbwire (field numbers from
-- shared/docs/littlehorse-protocol.md), for specs that need what the official 0.14.0 codec cannot
-- write (VariableValue members 9-13, TypeDefinition members 5-8, the list requests' bookmark
-- and limit, SearchCorrelatedEvent, DeleteCorrelatedEvent). Every builder returns the bytes
-- of one message.
--   local m = require "lhmsg"
--   m.put_def { name = "d", type = m.T.prim("INT"), correlated = { ttl_seconds = 60 } }
--   m.put_event { wf = "w", def = "d", guid = "g", content = m.V.int(5) }
local pb = require "pbwire"
local rt = require "runtime"

local M = {}
local len, var = pb.len_field, pb.varint_field

local TYPES = { JSON_OBJ = 0, JSON_ARR = 1, DOUBLE = 2, BOOL = 3, STR = 4, INT = 5, BYTES = 6,
                WF_RUN_ID = 7, TIMESTAMP = 8 }

-- VariableValue bodies. V.null is the empty message.
local V = { null = "" }
M.V = V
function V.json_obj(s) return len(2, s) end
function V.json_arr(s) return len(3, s) end
function V.double(x) return pb.key(4, 1) .. rt.double_bytes(x) end
function V.bool(b) return var(5, b and 1 or 0) end
function V.str(s) return len(6, s) end
function V.int(n) return var(7, n) end
function V.bytes(s) return len(8, s) end
function V.wf_run_id(id) return len(9, len(1, id)) end
function V.timestamp(seconds) return len(10, var(1, seconds)) end
function V.struct(name, version) return len(11, len(1, len(1, name) .. var(2, version or 0))) end
-- items: VariableValue bodies; element_type: a TypeDefinition body or nil
function V.array(items, element_type)
  local out = {}
  for i, it in ipairs(items) do out[i] = len(1, it) end
  return len(12, table.concat(out) .. (element_type and len(2, element_type) or ""))
end
-- entries: { { key body, value body }, ... }; map_type: { key TypeDefinition, value TypeDefinition } or nil
function V.map(entries, map_type)
  local out = {}
  for i, e in ipairs(entries) do out[i] = len(1, len(1, e[1]) .. len(2, e[2])) end
  local mt = map_type and len(2, len(1, map_type[1]) .. len(2, map_type[2])) or ""
  return len(13, table.concat(out) .. mt)
end

-- TypeDefinition bodies.
local T = {}
M.T = T
local function masked(m) return m and var(4, 1) or "" end
function T.prim(name, is_masked) return var(1, assert(TYPES[name], name)) .. masked(is_masked) end
function T.struct(name, version) return len(5, len(1, name) .. var(2, version or 0)) end
function T.array(elem) return len(6, elem and len(1, elem) or "") end
function T.map(k, v) return len(8, (k and len(1, k) or "") .. (v and len(2, v) or "")) end

function M.wf_run_id(id) return len(1, id) end
function M.def_id(name) return len(1, name) end

-- PutExternalEventDefRequest { 1 name, 2 retention, 3 content_type: ReturnType { 1 type }, 4 config }
-- o = { name =, seconds_after_put =, type = TypeDefinition body | false (a ReturnType without a
-- type: void) | nil (no content_type), correlated = { ttl_seconds =, delete_after_first_correlation = } }
function M.put_def(o)
  local out = len(1, o.name)
  if o.seconds_after_put then out = out .. len(2, var(1, o.seconds_after_put)) end
  if o.type ~= nil then out = out .. len(3, o.type and len(1, o.type) or "") end
  if o.correlated then
    local c = o.correlated
    out = out .. len(4, (c.ttl_seconds and var(1, c.ttl_seconds) or "")
                        .. (c.delete_after_first_correlation and var(2, 1) or ""))
  end
  return out
end

-- PutExternalEventRequest { 1 wf_run_id, 2 def id, 3 guid?, 5 content? }
function M.put_event(o)
  return len(1, M.wf_run_id(o.wf)) .. len(2, M.def_id(o.def)) .. (o.guid and len(3, o.guid) or "")
         .. (o.content and len(5, o.content) or "")
end

-- PutCorrelatedEventRequest { 1 key, 2 def id, 3 content? }
function M.put_correlated(o)
  return len(1, o.key) .. len(2, M.def_id(o.def)) .. (o.content and len(3, o.content) or "")
end

-- CorrelatedEventId { 1 key, 2 def id }; DeleteCorrelatedEventRequest { 1 id }
function M.correlated_id(key, def) return len(1, key) .. len(2, M.def_id(def)) end
function M.delete_correlated(key, def) return len(1, M.correlated_id(key, def)) end

local function page(o, bookmark_field, limit_field)
  return (o.bookmark and len(bookmark_field, o.bookmark) or "") .. (o.limit and var(limit_field, o.limit) or "")
end

local function window(o)
  local floor = math.floor
  return (o.earliest and len(3, var(1, floor(o.earliest / 1000)) .. var(2, o.earliest % 1000 * 1000000)) or "")
         .. (o.latest and len(4, var(1, floor(o.latest / 1000)) .. var(2, o.latest % 1000 * 1000000)) or "")
end

-- ListExternalEventsRequest { 1 wf_run_id, 2 bookmark?, 3 limit? }
function M.list_events(o) return len(1, M.wf_run_id(o.wf)) .. page(o, 2, 3) end

-- SearchExternalEventRequest { 1 bookmark?, 2 limit?, 3/4 earliest/latest (ms here), 5 def id, 6 is_claimed? }
function M.search_events(o)
  return page(o, 1, 2) .. window(o) .. (o.def and len(5, M.def_id(o.def)) or "")
         .. (o.is_claimed ~= nil and var(6, o.is_claimed and 1 or 0) or "")
end

-- SearchCorrelatedEventRequest { 1 bookmark?, 2 limit?, 3/4 window, 5 def id, 6 has_external_events? }
function M.search_correlated(o)
  return page(o, 1, 2) .. window(o) .. (o.def and len(5, M.def_id(o.def)) or "")
         .. (o.has_external_events ~= nil and var(6, o.has_external_events and 1 or 0) or "")
end

-- SearchExternalEventDefRequest { 1 bookmark?, 2 limit?, 3 prefix? }
function M.search_defs(o) return page(o, 1, 2) .. (o.prefix and len(3, o.prefix) or "") end

M.PATH = {}
for _, rpc in ipairs { "PutExternalEvent", "GetExternalEvent", "ListExternalEvents", "SearchExternalEvent",
                       "PutCorrelatedEvent", "GetCorrelatedEvent", "DeleteCorrelatedEvent", "SearchCorrelatedEvent",
                       "PutExternalEventDef", "GetExternalEventDef", "DeleteExternalEventDef",
                       "SearchExternalEventDef" } do
  M.PATH[rpc] = "/littlehorse.LittleHorse/" .. rpc
end

return M
