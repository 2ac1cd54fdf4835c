-- busted --helper for the GC-torture run (scripts/suites/gc.sh), under the C host
-- spec/support/gc_torture_host.c: while any of the module's converting functions runs (every
-- RPC method, blocking and async, and the encode/decode test entry points), each allocation of
-- a Lua object first forces a full collection, and freed memory is overwritten with junk. A
-- pointer the C code keeps into a string or table it no longer anchors then reads junk at
-- once (the stored event comes back wrong), instead of once in a while in production.
-- Outside those calls the collector runs as usual, so busted itself keeps its normal speed.
local torture = require "lh_gc_torture" -- provided by the host; this helper needs it
local core = require "littlehorse.core"

local function wrap(f)
  local off = setmetatable({}, { __close = function() torture.off() end })
  return function(...)
    torture.on()
    local _ <close> = off
    return f(...)
  end
end

-- The C client's methods (its metatable's __index), wrapped before any client is made: the
-- littlehorse client binds them when it makes its first client, so it calls these too.
local methods = debug.getregistry()["littlehorse.client"].__index
for _, name in ipairs { "put_external_event", "get_external_event", "put_external_event_def",
                        "get_external_event_def" } do
  methods[name] = wrap(methods[name])
  methods[name .. "_async"] = wrap(methods[name .. "_async"])
end
core.encode_put_external_event = wrap(core.encode_put_external_event)
core.decode_external_event = wrap(core.decode_external_event)

-- Specs can tell that the torture is armed (and how much it did).
LH_GC_TORTURE = torture
