-- The direct ExternalEvent reader (src/event_reader.c) against the generic protobuf-c decoder:
-- for every input, canonical or not, valid or not, both must give the same result. Inputs are
-- generated: random subsets of the fields in random order, WfRunId parent chains of random
-- depth (past the reader's limit too), strings with and without NUL bytes, repeated and
-- unknown fields, wrong wire types, overlong varints, and random mutations of all of these.
local core = require "littlehorse.core"
local pb = require "pbwire"
local rt = require "runtime"
local key, len_field, varint_field = pb.key, pb.len_field, pb.varint_field

local rnd = math.random

local function text()
  local pool = { "", "bench-wf-run-0001", "evt", "ü-ñ", "a/b", "x\0y", string.rep("k", 300) }
  return pool[rnd(#pool)]
end

local function shuffle(t)
  for i = #t, 2, -1 do
    local j = rnd(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

local function wf_run_id(depth)
  local parts = {}
  if rnd() < 0.9 then parts[#parts + 1] = len_field(1, text()) end
  if depth > 0 then parts[#parts + 1] = len_field(2, wf_run_id(depth - 1)) end
  return table.concat(shuffle(parts))
end

local function content()
  local kinds = {
    function() return len_field(2, '{"amount":42,"approved":true,"note":"benchmark"}') end,
    function() return len_field(3, '[1,2.5,"x",null,{"a":[]}]') end,
    function() return len_field(2, '{not json') end,
    -- the JSON kinds the reader takes itself, and shapes near them it leaves to protobuf-c
    function() return len_field(3, '') end,
    function() return len_field(2, '{"a":"x\0y"}') end,
    function() return len_field(2, '{"a":1}') .. len_field(3, '[2]') end, -- two members: the last wins
    function() return len_field(3, '[1]') .. varint_field(7, 5) end,
    function() return len_field(2, '{"k":[[],{}]}') .. varint_field(30, 1) end, -- an unknown field
    function() return key(4, 1) .. rt.double_bytes(rnd() * 1e6) end,
    function() return varint_field(5, rnd(0, 1)) end,
    function() return len_field(6, text()) end,
    function() return varint_field(7, rt.random_int()) end,
    function() return len_field(8, "\0\1\2\255") end,
    function() return len_field(9, wf_run_id(rnd(0, 3))) end,
    function() return len_field(10, varint_field(1, rnd(-1e9, 1e9)) .. varint_field(2, rnd(0, 999999999))) end,
    function() return "" end,
  }
  return kinds[rnd(#kinds)]()
end

local function event_id()
  local parts = {}
  if rnd() < 0.9 then parts[#parts + 1] = len_field(1, wf_run_id(rnd(0, 20))) end
  if rnd() < 0.9 then parts[#parts + 1] = len_field(2, rnd() < 0.9 and len_field(1, text()) or "") end
  if rnd() < 0.9 then parts[#parts + 1] = len_field(3, text()) end
  return table.concat(shuffle(parts))
end

local function event()
  local parts = {}
  if rnd() < 0.9 then parts[#parts + 1] = len_field(1, event_id()) end
  if rnd() < 0.8 then
    local ts = {}
    if rnd() < 0.9 then ts[#ts + 1] = varint_field(1, math.floor((rnd() - 0.5) * 4e10)) end
    if rnd() < 0.9 then ts[#ts + 1] = varint_field(2, math.floor(rnd() * 3e9) - 1e9) end
    parts[#parts + 1] = len_field(2, table.concat(shuffle(ts)))
  end
  if rnd() < 0.9 then parts[#parts + 1] = len_field(3, content()) end
  if rnd() < 0.3 then parts[#parts + 1] = varint_field(4, rnd(-5, 5)) end
  if rnd() < 0.3 then parts[#parts + 1] = varint_field(5, rnd(0, 1e6)) end
  if rnd() < 0.5 then parts[#parts + 1] = varint_field(6, rnd(0, 2)) end
  -- now and then, what only the generic decoder takes: repeats, unknown fields, wrong types
  local odd = rnd(12)
  if odd == 1 and #parts > 0 then parts[#parts + 1] = parts[rnd(#parts)] end
  if odd == 2 then parts[#parts + 1] = varint_field(rnd(7, 40), 7) end
  if odd == 3 then parts[#parts + 1] = len_field(6, "x") end
  if odd == 4 then parts[#parts + 1] = key(6, 0) .. string.rep("\128", 9) .. "\002" end -- bits past 64
  if odd == 5 then parts[#parts + 1] = key(4, 0) .. "\255\255\255\255\255\255\255\255\255\001" end
  return table.concat(shuffle(parts))
end

local function mutate(s)
  local op = rnd(3)
  if #s == 0 then return string.char(rnd(0, 255)) end
  local i = rnd(#s)
  if op == 1 then return s:sub(1, i - 1) .. string.char(rnd(0, 255)) .. s:sub(i + 1) end
  if op == 2 then return s:sub(1, i) end
  return s:sub(1, i) .. string.char(rnd(0, 255)) .. s:sub(i + 1)
end

-- A canonical text of any decoded value: tables by sorted keys, with their metatable's kind.
local function show(v, seen)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" then return (math.type and math.type(v) or "number") .. ":" .. string.format("%.17g", v) end
  if t ~= "table" then return t .. ":" .. tostring(v) end
  seen = seen or {}
  assert(not seen[v], "a decoded value contains itself")
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return show(a) < show(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = show(k) .. "=" .. show(v[k], seen) end
  local mt = getmetatable(v)
  local kind = mt == nil and "" or mt == core.array_mt and "array" or mt == core.timestamp_mt and "timestamp"
               or mt == core.typed_mt and "typed" or "other"
  seen[v] = nil
  return kind .. "{" .. table.concat(out, ",") .. "}"
end

local function both(bytes)
  local fast = rt.pack(core.decode_external_event(bytes))
  local generic = rt.pack(core.decode_external_event(bytes, "generic"))
  return show(fast[1]) .. " " .. show(fast[2]), show(generic[1]) .. " " .. show(generic[2])
end

describe("the direct ExternalEvent reader", function()
  it("decodes what the generic decoder decodes, to the same table, for 3000 generated events", function()
    math.randomseed(7)
    local decoded = 0
    for _ = 1, 3000 do
      local bytes = event()
      local fast, generic = both(bytes)
      assert.are.equal(generic, fast)
      if core.decode_external_event(bytes) then decoded = decoded + 1 end
    end
    -- the generator makes mostly valid events: the comparison is not vacuous
    assert.is_true(decoded > 2500, "only " .. decoded .. " of 3000 events decoded")
  end)

  it("agrees with the generic decoder on 5000 mutated events (valid or not)", function()
    math.randomseed(11)
    local refused = 0
    for _ = 1, 5000 do
      local bytes = mutate(event())
      local fast, generic = both(bytes)
      assert.are.equal(generic, fast)
      if not core.decode_external_event(bytes) then refused = refused + 1 end
    end
    assert.is_true(refused > 500, "only " .. refused .. " of 5000 mutated events were refused")
  end)

  it("reads a typical reply in full", function()
    local bytes = len_field(1, len_field(1, len_field(1, "wf-1") .. len_field(2, len_field(1, "parent")))
                                .. len_field(2, len_field(1, "order-paid")) .. len_field(3, "g-1"))
                  .. len_field(2, varint_field(1, 1700000000) .. varint_field(2, 5))
                  .. len_field(3, len_field(2, '{"a":1}')) .. varint_field(4, 2) .. varint_field(6, 1)
    local ev = assert(core.decode_external_event(bytes))
    assert.are.same({ id = "wf-1", parent_wf_run_id = { id = "parent" } }, ev.id.wf_run_id)
    assert.equal("order-paid", ev.id.external_event_def_id.name)
    assert.equal("g-1", ev.id.guid)
    assert.equal("2023-11-14T22:13:20.000000005Z", tostring(ev.created_at))
    assert.are.same({ a = 1 }, ev.content)
    assert.equal("JSON_OBJ", ev.content_type)
    assert.equal(2, ev.thread_run_number)
    assert.is_nil(ev.node_run_position)
    assert.is_true(ev.claimed)
  end)

  it("takes only 'generic' or nothing as the decoder choice", function()
    assert.has_error(function() core.decode_external_event("", "fastest") end)
  end)
end)
