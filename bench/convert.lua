-- Conversion cost alone (no network): a typical event (a 20-field nested object with a 1 KiB
-- string and a 100-element array) turned into PutExternalEvent wire bytes by
-- core.encode_put_external_event, against lua-cjson (Debian lua-cjson 2.1.0) encoding the
-- same table; and an ExternalEvent reply carrying that content turned back into a Lua table
-- by core.decode_external_event, against cjson.decode of the same JSON text. Both sides run
-- in the same process, interleaved in rounds; the figure per side is the median over rounds
-- of the mean time per op in a batch. Target: ratio (ours / cjson) <= 1.0 in both directions.
--   lua5.4 bench/convert.lua [rounds] [ops-per-batch]      (run by bench/run.sh; `make bench`)
if not pcall(require, "littlehorse.core") then -- run from a checkout after `make build`
  package.path = "./lua_modules/share/lua/5.4/?.lua;./lua_modules/share/lua/5.4/?/init.lua;" .. package.path
  package.cpath = "./lua_modules/lib/lua/5.4/?.so;" .. package.cpath
end
local core = require "littlehorse.core"
local cjson = require "cjson"

local ROUNDS = tonumber(arg[1]) or 15
local BATCH = tonumber(arg[2]) or 2000

-- ------------------------------------------------------------------ the typical event

local function event()
  math.randomseed(42)
  local note = {}
  for i = 1, 1024 do note[i] = string.char(97 + (i * 7) % 26) end
  local readings = {}
  for i = 1, 100 do
    -- integers and floats, as real measurements come (cjson writes both with %.14g)
    readings[i] = i % 2 == 0 and math.random(0, 1000000) or math.random() * 1000
  end
  return {
    order_id = "ord-2026-11-28-000123",
    customer = { id = 918273, name = "Ada Lovelace", email = "ada@example.com", vip = true,
                 address = { street = "12 Analytical Way", city = "London", zip = "N1 9GU", country = "GB" } },
    amount = 1249.95, currency = "EUR", quantity = 3, approved = true,
    created = "2026-11-28T11:28:19.123Z", tags = { "priority", "gift", "eu" },
    note = table.concat(note), readings = readings,
    status = "pending", retries = 0, score = 0.87, source = "web", region = "eu-west-1",
    priority = 2, channel = "mobile", discount = 0.1, shipped = false,
    items = { { sku = "A-1", qty = 1, price = 499.99 }, { sku = "B-2", qty = 2, price = 374.98 } },
  }
end

local EV = event()
local n_fields = 0
for _ in pairs(EV) do n_fields = n_fields + 1 end
assert(n_fields == 20, "the typical event has 20 top-level fields")

local REQ = { wf_run_id = "bench-wf-run-0001", external_event_def_name = "bench-event", guid = "g-1", content = EV }

-- A reply carrying the same content (JSON text made by our encoder; cjson decodes that text).
local TEXT = core.json_encode(EV)
local function varint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7
    if n ~= 0 then b = b | 0x80 end
    out[#out + 1] = string.char(b)
  until n == 0
  return table.concat(out)
end
local function len_field(no, s) return varint(no << 3 | 2) .. varint(#s) .. s end
local REPLY = len_field(1, len_field(1, len_field(1, "bench-wf-run-0001")) .. len_field(2, len_field(1, "bench-event"))
                         .. len_field(3, "g-1"))
           .. len_field(2, "\x08" .. varint(1764329299) .. "\x10" .. varint(123000000))
           .. len_field(3, len_field(2, TEXT))
do -- sanity: both sides produce what they should
  local ev = assert(core.decode_external_event(REPLY))
  assert(ev.content_type == "JSON_OBJ" and ev.content.note == EV.note and #ev.content.readings == 100)
  assert(#core.encode_put_external_event(REQ) > #TEXT)
  assert(cjson.decode(TEXT).order_id == EV.order_id)
end

-- ------------------------------------------------------------------ timing

local now = core.now

local function batch(fn, arg)
  local t0 = now()
  for _ = 1, BATCH do fn(arg) end
  return (now() - t0) / BATCH * 1e6 -- µs per op
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

local encode_put, json_encode, decode_reply, cjson_encode, cjson_decode =
  core.encode_put_external_event, core.json_encode, core.decode_external_event, cjson.encode, cjson.decode

local sides = {
  { "ours: encode_put_external_event", encode_put, REQ },
  { "ours: json_encode (JSON text only)", json_encode, EV },
  { "cjson.encode", cjson_encode, EV },
  { "ours: decode_external_event", decode_reply, REPLY },
  { "ours: json_decode (JSON text only)", core.json_decode, TEXT },
  { "cjson.decode", cjson_decode, TEXT },
}
local samples = {}
for i = 1, #sides do samples[i] = {} end

for _ = 1, 2 do for _, s in ipairs(sides) do batch(s[2], s[3]) end end -- warm-up
for _ = 1, ROUNDS do
  for i, s in ipairs(sides) do
    collectgarbage()
    samples[i][#samples[i] + 1] = batch(s[2], s[3])
  end
end

local us = {}
for i, s in ipairs(sides) do us[s[1]] = median(samples[i]) end

print(string.format("typical event: 20 fields, %d bytes of JSON (1 KiB string, 100-element array); " ..
                    "request %d bytes, reply %d bytes", #TEXT, #encode_put(REQ), #REPLY))
print(string.format("median of %d rounds x %d ops, %s", ROUNDS, BATCH, _VERSION))
for _, s in ipairs(sides) do print(string.format("  %-38s %8.2f us/op", s[1], us[s[1]])) end
local function ratio(label, a, b)
  local r = us[a] / us[b]
  print(string.format("%-58s ratio %.2f  %s", label, r, r <= 1.0 and "PASS" or "FAIL"))
  return r <= 1.0
end
local ok1 = ratio("encode: Lua table -> protobuf wire bytes vs cjson.encode",
                  "ours: encode_put_external_event", "cjson.encode")
local ok2 = ratio("decode: reply bytes -> Lua table vs cjson.decode",
                  "ours: decode_external_event", "cjson.decode")
print(string.format("conversion targets: %d PASS, %d FAIL", (ok1 and 1 or 0) + (ok2 and 1 or 0),
                    (ok1 and 0 or 1) + (ok2 and 0 or 1)))
