-- The direct PutExternalEventRequest writer (src/event_writer.c) against protobuf-c's packer:
-- the same bytes for every request, over generated requests with every content kind, WfRunId
-- chains of any depth, optional fields set or not, empty and non-ASCII strings.
local lh = require "littlehorse"
local core = lh.core
local rt = require "runtime"

local rnd = math.random

local function text(nonempty)
  local pool = { "wf-1", "ü-ñ-日本", "a b", string.rep("x", 200), string.rep("y", 20000) }
  if not nonempty then pool[#pool + 1] = "" end
  return pool[rnd(#pool)]
end

local function wf_run_id()
  if rnd() < 0.5 then return text(true) end
  local w = { id = text(true) }
  local cur = w
  for _ = 1, rnd(0, 12) do
    cur.parent_wf_run_id = { id = text(true) }
    cur = cur.parent_wf_run_id
  end
  return w
end

local contents = {
  function() return nil end,
  function() return lh.null end,
  function() return { amount = rnd(-1e6, 1e6), approved = rnd() < 0.5, note = text() } end,
  function() return { 1, 2.5, "x", { a = { b = {} } } } end,
  function() return text() end,
  function() return rt.random_int() end,
  function() return rnd(-5, 5) end,
  function() return (rnd() - 0.5) * 10 ^ rnd(-300, 300) end,
  function() return rt.NEG0 end,
  function() return rnd() < 0.5 end,
  function() return lh.bytes(string.char(0, 1, 255) .. text()) end,
  function() return lh.bytes("") end,
  function() return lh.json_obj('{"raw": true}') end,
  function() return lh.json_arr("[]") end,
  function() return lh.int(7) end,
  function() return lh.double(1) end,
  function() return lh.str("") end,
  function() return lh.timestamp { seconds = 1700000000, nanos = rnd(0, 999999999) } end,
  function() return lh.wf_run_id("parent_child") end,
  function() return lh.array { 1, "two", lh.null } end,
  function() return lh.map { k = 1 } end,
}

local function request()
  local r = { wf_run_id = wf_run_id(), content = contents[rnd(#contents)]() }
  if rnd() < 0.5 then r.external_event_def_name = text(true) else r.external_event_def_id = { name = text(true) } end
  if rnd() < 0.5 then r.guid = ({ "g-1", "g", "ünï" })[rnd(3)] end
  if rnd() < 0.4 then
    r.thread_run_number = math.floor(rnd() * 2147483648) -- (5.1: 32-bit bounds)
    if rnd() < 0.5 then r.node_run_position = ({ 0, 1, 300, 2147483647 })[rnd(4)] end
  end
  return r
end

describe("the direct PutExternalEventRequest writer", function()
  it("writes protobuf-c's bytes for 3000 generated requests", function()
    math.randomseed(5)
    local direct_kinds = {}
    for _ = 1, 3000 do
      local r = request()
      local generic = core.encode_put_external_event(r, "generic")
      local direct = core.encode_put_external_event(r)
      assert.are.equal(generic, direct)
      direct_kinds[type(r.content)] = true
    end
    assert.is_true(direct_kinds.table and direct_kinds.string and direct_kinds.number and direct_kinds.boolean and true)
  end)

  it("takes only 'generic' or nothing as the encoder choice", function()
    assert.has_error(function() core.encode_put_external_event({ wf_run_id = "w", external_event_def_name = "d" }, "fast") end)
  end)
end)
