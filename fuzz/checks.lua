-- The properties the fuzz targets check on every input, shared with the regression spec
-- (spec/fuzz_regressions_spec.lua replays fuzz/regressions/<target>/* through these same
-- functions against the normally built module). Each function raises on a violation; the
-- fuzz harness turns a raise into abort(), so libFuzzer records the input as a crasher.
--
--   reply(core, bytes)  core.decode_external_event(bytes): returns a table or nil + message
--                       (never raises); a decoded JSON content re-encodes and decodes back to
--                       the same value; any decoded content re-encodes as a request or is
--                       refused with a misuse error (never a crash).
--   replies(core, input) every other reply reader (see M.replies below).
--   json(core, text)    core.json_decode(text): a value or nil + message (never raises); on
--                       success decode -> encode -> decode gives the same value, and the
--                       second encoding is the same text as the first (a fixed point).
local M = {}

-- Runtimes without an integer subtype (5.1, LuaJIT) have one kind of number, compared as a
-- float; without string.pack, a float's bits are its value and the sign of a zero.
local mtype = math.type or function() return "float" end
local function same_float(a, b)
  if string.pack then return string.pack("<d", a) == string.pack("<d", b) end
  return a == b and (a ~= 0 or 1 / a == 1 / b)
end

-- Same value: same Lua types, integers vs floats kept apart, floats bit for bit, the same
-- array metatable, the same keys.
local function same(a, b, path)
  path = path or "value"
  local ta, tb = type(a), type(b)
  if ta ~= tb then error(path .. ": " .. ta .. " vs " .. tb, 0) end
  if ta == "number" then
    if mtype(a) ~= mtype(b) then error(path .. ": " .. mtype(a) .. " vs " .. mtype(b), 0) end
    if mtype(a) == "float" then
      if not same_float(a, b) and not (a ~= a and b ~= b) then
        error(string.format("%s: %.17g vs %.17g", path, a, b), 0)
      end
    elseif a ~= b then
      error(string.format("%s: %d vs %d", path, a, b), 0)
    end
  elseif ta == "table" then
    if getmetatable(a) ~= getmetatable(b) then error(path .. ": different metatables", 0) end
    for k, v in pairs(a) do same(v, rawget(b, k), path .. "[" .. tostring(k) .. "]") end
    for k in pairs(b) do
      if rawget(a, k) == nil then error(path .. ": extra key " .. tostring(k), 0) end
    end
  elseif a ~= b then
    error(path .. ": " .. tostring(a) .. " vs " .. tostring(b), 0)
  end
end
M.same = same

-- A misuse error from the module names a function ("bad argument #1 to '...'"); anything
-- else (an "attempt to index", a C-level message, a crash) is a bug.
local function is_misuse(err)
  return type(err) == "string" and err:find("bad argument #%d+ to '") ~= nil
end

local function check_json_roundtrip(core, v, what)
  local ok, text = pcall(core.json_encode, v)
  if not ok then error(what .. ": decoded JSON does not re-encode: " .. tostring(text), 0) end
  local v2, err = core.json_decode(text)
  if v2 == nil and err then error(what .. ": re-encoded JSON does not decode: " .. err .. " in " .. text, 0) end
  same(v, v2, what)
  local ok2, text2 = pcall(core.json_encode, v2)
  if not ok2 then error(what .. ": second encode failed: " .. tostring(text2), 0) end
  -- Object members come out in table traversal order, which may differ between two equal
  -- tables; everything else is fixed, so the second text has the same length.
  if #text2 ~= #text then error(what .. ": encode is not a fixed point: " .. text .. " vs " .. text2, 0) end
  return text
end

function M.json(core, text)
  local ok, v, err = pcall(core.json_decode, text)
  if not ok then error("json_decode raised: " .. tostring(v), 0) end
  if v == nil then
    if type(err) ~= "string" or not err:find("^at byte %d+: ") then
      error("json_decode failed without a positioned message: " .. tostring(err), 0)
    end
    return false
  end
  check_json_roundtrip(core, v, "json")
  return true
end

local KINDS = {
  JSON_OBJ = true, JSON_ARR = true, DOUBLE = true, BOOL = true, STR = true, INT = true,
  BYTES = true, WF_RUN_ID = true, TIMESTAMP = true, STRUCT = true, ARRAY = true, MAP = true,
}

-- A decoded ExternalEvent or CorrelatedEvent table: its timestamp prints, its content_type is
-- known and agrees with its content, JSON content round-trips, and the content can be posted
-- again or is refused as misuse (e.g. a str that is not valid UTF-8, which the server may send
-- but our client never does).
local function check_event(core, ev, what)
  if ev.created_at ~= nil then
    local s = tostring(ev.created_at)
    if type(s) ~= "string" or not s:find("Z$") then error(what .. ": created_at tostring: " .. tostring(s), 0) end
  end
  local kind = ev.content_type
  if kind ~= nil and not KINDS[kind] then error(what .. ": unknown content_type " .. tostring(kind), 0) end
  if (kind == nil) ~= (ev.content == nil) then error(what .. ": content and content_type disagree", 0) end
  if kind == "TIMESTAMP" then tostring(ev.content) end
  if (kind == "JSON_OBJ" or kind == "JSON_ARR") and getmetatable(ev.content) ~= core.typed_mt then
    check_json_roundtrip(core, ev.content, what .. " content")
  end
  local ok, err = pcall(core.encode_put_external_event,
                        { wf_run_id = "w", external_event_def_name = "d", content = ev.content })
  if not ok and not is_misuse(err) then error(what .. ": re-encoding the content crashed: " .. tostring(err), 0) end
end

function M.reply(core, bytes)
  local ok, ev, err = pcall(core.decode_external_event, bytes)
  if not ok then error("decode_external_event raised: " .. tostring(ev), 0) end
  if ev == nil then
    if err ~= "not a valid ExternalEvent message" then error("unexpected decode failure: " .. tostring(err), 0) end
    return false
  end
  if type(ev) ~= "table" then error("decode returned a " .. type(ev), 0) end
  check_event(core, ev, "reply")
  return true
end

-- The RPCs whose replies core.decode_reply reads; the first input byte picks one (modulo).
M.RPCS = {
  "PutExternalEvent", "GetExternalEvent", "PutExternalEventDef", "GetExternalEventDef", "PutCorrelatedEvent",
  "GetCorrelatedEvent", "DeleteCorrelatedEvent", "DeleteExternalEventDef", "ListExternalEvents",
  "SearchExternalEvent", "SearchCorrelatedEvent", "SearchExternalEventDef",
}

-- Every value of a decoded reply: strings, numbers, booleans, and tables whose keys are
-- strings or array indexes; typed values (a metatable from core) and lh.null print.
local function walk(core, v, path, depth)
  if depth > 200 then error(path .. ": nested deeper than the decoder allows", 0) end
  local t = type(v)
  if t == "table" then
    if getmetatable(v) ~= nil then tostring(v) end
    if rawget(v, "content_type") ~= nil or (rawget(v, "id") ~= nil and rawget(v, "created_at") ~= nil) then
      check_event(core, v, path)
    end
    for k, x in pairs(v) do
      if type(k) ~= "string" and type(k) ~= "number" then error(path .. ": a key of type " .. type(k), 0) end
      walk(core, x, path .. "." .. tostring(k), depth + 1)
    end
  elseif t == "userdata" or t == "cdata" then
    tostring(v) -- lh.null, a LuaJIT int64
  elseif t ~= "string" and t ~= "number" and t ~= "boolean" then
    error(path .. ": a value of type " .. t, 0)
  end
end

--   replies(core, input) core.decode_reply(RPCS[input byte 1], rest): returns a value or nil +
--                       "not a valid <RPC> reply" (never raises); every value in it is plain
--                       data, and every event in it passes the reply target's checks.
function M.replies(core, input)
  if #input == 0 then return false end
  local rpc = M.RPCS[input:byte(1) % #M.RPCS + 1]
  local ok, v, err = pcall(core.decode_reply, rpc, input:sub(2))
  if not ok then error("decode_reply(" .. rpc .. ") raised: " .. tostring(v), 0) end
  if v == nil then
    if err ~= "not a valid " .. rpc .. " reply" then error(rpc .. ": unexpected decode failure: " .. tostring(err), 0) end
    return false
  end
  walk(core, v, rpc, 0)
  return true
end

return M
