-- Writes the seed corpora for the fuzz targets (run by scripts/fuzz.sh with the module built
-- into ./lua_modules):
--   lua5.4 fuzz/make_corpus.lua <reply-dir> <json-dir> <replies-dir>
-- reply: ExternalEvent messages carrying every VariableValue member (content bytes taken from
-- our own request encoder, wrapped by the small protobuf writer below), with and without the
-- optional fields, plus hand-made JSON texts and truncated/odd messages.
-- json: texts from json_encode of assorted values, plus hand-written edge cases.
-- replies: a selector byte (which RPC's reply, see fuzz/checks.lua RPCS) and that reply's bytes:
-- events, correlated events, defs with each kind of type information, lists and id lists.
local core = require "littlehorse.core"
local lh = require "littlehorse"

local checks = dofile((arg[0]:gsub("make_corpus%.lua$", "checks.lua")))
local reply_dir, json_dir = assert(arg[1], "reply dir"), assert(arg[2], "json dir")
local replies_dir = assert(arg[3], "replies dir")

local function varint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7 -- logical shift: negative int64s take 10 bytes, as protobuf wants
    if n ~= 0 then b = b | 0x80 end
    out[#out + 1] = string.char(b)
  until n == 0
  return table.concat(out)
end
local function len_field(no, s) return varint(no << 3 | 2) .. varint(#s) .. s end
local function varint_field(no, v) return varint(no << 3) .. varint(v) end

-- The content (field 5) of a request our encoder makes: the VariableValue bytes.
local function content_bytes(v)
  local req = core.encode_put_external_event { wf_run_id = "w", external_event_def_name = "d", content = v }
  local pos = 1
  while pos <= #req do
    local tag, n, shift = 0, 0, 0
    repeat
      local b = req:byte(pos); pos = pos + 1
      tag = tag | ((b & 0x7f) << shift); shift = shift + 7
    until b < 0x80
    shift = 0
    repeat
      local b = req:byte(pos); pos = pos + 1
      n = n | ((b & 0x7f) << shift); shift = shift + 7
    until b < 0x80
    if tag >> 3 == 5 then return req:sub(pos, pos + n - 1) end
    pos = pos + n
  end
  return nil -- NULL content: no field
end

local function timestamp(s, ns) return varint_field(1, s) .. varint_field(2, ns) end

local function event(vv, opts)
  opts = opts or {}
  local id = len_field(1, len_field(1, opts.wf or "wf-1")) .. len_field(2, len_field(1, "def")) .. len_field(3, opts.guid or "g")
  local parts = { len_field(1, id) }
  if opts.created ~= false then parts[#parts + 1] = len_field(2, varint_field(1, 1700000000) .. varint_field(2, 123000000)) end
  if vv then parts[#parts + 1] = len_field(3, vv) end
  if opts.thread then parts[#parts + 1] = varint_field(4, opts.thread) end
  if opts.node then parts[#parts + 1] = varint_field(5, opts.node) end
  if opts.claimed then parts[#parts + 1] = varint_field(6, 1) end
  return table.concat(parts)
end

local n = 0
local function write(dir, data)
  n = n + 1
  local f = assert(io.open(string.format("%s/seed-%03d", dir, n), "wb"))
  f:write(data)
  f:close()
end

local contents = {
  true, false, 0, 1, -1, math.maxinteger, math.mininteger, 9007199254740993, 0.0, -0.0, 1.5,
  5e-324, 1.7976931348623157e308, 0 / 0, math.huge, "", "hello", "h\u{e9}llo \u{1F389}",
  { 1, 2, 3 }, { a = 1, b = { c = { 1.5, "x", lh.null } } }, {}, lh.empty_array,
  lh.bytes("\0\1\2\255"), lh.int(7), lh.double(7), lh.str("7"), lh.json_obj('{"k": [1, 2.0, "\\u00e9"]}'),
  lh.json_arr("[]"), lh.timestamp(1.25), lh.timestamp("1969-07-20T20:17:40Z"),
  lh.wf_run_id("parent_child_grandchild"), lh.array { 1, "a", lh.null, lh.array { true } },
  lh.map { { "k", 1 }, { 2, lh.map { { lh.null, false } } } },
  lh.struct("car", 3, { make = "VW", year = 1999, tags = lh.array { "a" }, extra = { nested = { 1 } } }),
}
for i, v in ipairs(contents) do
  local vv = content_bytes(v)
  write(reply_dir, event(vv))
  if i % 3 == 0 then write(reply_dir, event(vv, { thread = 0, node = 7, claimed = true, created = false })) end
end
write(reply_dir, event(nil))
write(reply_dir, event("")) -- content present, no member: NULL
-- JSON text the server may hold as sent: valid, odd, malformed
for _, text in ipairs { '{"a":1}', '[1,2,3]', '{"big":18446744073709551616,"neg":-0,"e":1E400}', '{bad',
                        '[1,]', '"just a string"', 'null', '{"s":"\\ud83c\\udf89"}', '{"s":"\\ud83c"}' } do
  write(reply_dir, event(len_field(2, text)))
  write(reply_dir, event(len_field(3, text)))
end
write(reply_dir, "")
write(reply_dir, "\x0a\x05\x0a\x03\x0a\x01") -- truncated
write(reply_dir, event(content_bytes(lh.array { lh.array { lh.array { lh.array { 1 } } } })))

-- replies: one file per (RPC, reply); the selector byte is the RPC's index - 1 in checks.RPCS.
local selector = {}
for i, name in ipairs(checks.RPCS) do selector[name] = string.char(i - 1) end
local function reply(rpc, bytes) write(replies_dir, assert(selector[rpc], rpc) .. bytes) end

local def_id = len_field(1, "order-paid")
local event_id = len_field(1, len_field(1, "wf-1")) .. len_field(2, def_id) .. len_field(3, "guid-1")
local corr_id = len_field(1, "key-1") .. len_field(2, def_id)
local events = {}
for i, v in ipairs(contents) do
  local vv = content_bytes(v)
  events[#events + 1] = event(vv)
  if i % 4 == 0 then
    reply("PutExternalEvent", event(vv))
    reply("GetExternalEvent", event(vv, { thread = 1, node = 2, claimed = true }))
    local ce = len_field(1, corr_id) .. len_field(2, timestamp(1700000000, 5))
    if vv then ce = ce .. len_field(3, vv) end
    reply("PutCorrelatedEvent", ce)
    reply("GetCorrelatedEvent", ce .. len_field(4, event_id) .. len_field(4, event_id))
  end
end
-- type information: a primitive, masked, a StructDef id, inline array/map/struct, nested
local primitive = varint_field(1, 5)
local typedefs = {
  primitive, primitive .. varint_field(4, 1), len_field(5, len_field(1, "car") .. varint_field(2, 3)),
  len_field(6, len_field(1, primitive)), len_field(8, len_field(1, varint_field(1, 4)) .. len_field(2, primitive)),
  len_field(7, len_field(1, len_field(1, "make") .. len_field(2, len_field(1, varint_field(1, 4))))),
  len_field(6, len_field(1, len_field(6, len_field(1, varint_field(1, 1))))), varint_field(1, 99),
}
for _, td in ipairs(typedefs) do
  local def = len_field(1, def_id) .. len_field(2, timestamp(1700000000, 0)) .. len_field(3, varint_field(1, 3600))
              .. len_field(4, len_field(1, td))
  reply("PutExternalEventDef", def)
  reply("GetExternalEventDef", def .. len_field(5, varint_field(1, 60) .. varint_field(2, 1)))
end
reply("GetExternalEventDef", len_field(1, def_id) .. len_field(4, "")) -- returns nothing (void)
reply("DeleteCorrelatedEvent", "")
reply("DeleteExternalEventDef", "")
reply("ListExternalEvents", len_field(1, events[1]) .. len_field(1, events[20]) .. len_field(1, events[24]) .. len_field(2, "\0\1bm"))
reply("ListExternalEvents", "")
reply("SearchExternalEvent", len_field(1, event_id) .. len_field(1, event_id) .. len_field(2, "bm"))
reply("SearchCorrelatedEvent", len_field(1, corr_id) .. len_field(2, ""))
reply("SearchExternalEventDef", len_field(1, def_id) .. len_field(1, len_field(1, "")))
for _, rpc in ipairs(checks.RPCS) do reply(rpc, "\x0a\x05\x0a\x03") end -- truncated

local texts = {
  "0", "-0", "-0.0", "1.0", "1e2", "1E-2", "-1.5e+300", "123456789012345678901234567890",
  "9223372036854775807", "-9223372036854775808", "9223372036854775808", "0.1", "5e-324",
  "2.2250738585072014e-308", "1.7976931348623157e308", "true", "false", "null", '""',
  '"\\u0000\\u001f\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\ud83c\\udf89 \u{e9}"', " [ 1 , 2 ] ", "{}", "[]",
  '{"a":{"b":{"c":[[[[]]]]}}}', '{"a":1,"a":2}', "[1,2", '{"a"}', "\xff", '"\xc3"', "nul",
}
for _, t in ipairs(texts) do write(json_dir, t) end
for _, v in ipairs(contents) do
  local ok, text = pcall(core.json_encode, v)
  if ok then write(json_dir, text) end
end
write(json_dir, string.rep("[", 130) .. string.rep("]", 130))
print(string.format("make_corpus: %d seed files", n))
