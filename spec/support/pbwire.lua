-- Protobuf wire bytes by hand, for specs that build messages the encoder never makes
-- (replies, odd or broken encodings, the dev server's DevServer hooks): varints, keys, and
-- length-delimited or varint fields; and a reader for the fields of a message. Runs under
-- every Lua the suite runs under: 64-bit values go through runtime.lua's integer halves.
local rt = require "runtime"

local M = {}

-- n as a varint: any integer form runtime.lua knows (a Lua integer, an integral number, an
-- int64 cdata, lh's typed int, decimal text), written as its 64-bit two's complement
-- (negative: 10 bytes)
function M.varint(n)
  local hi, lo = rt.halves(n)
  local out = {}
  repeat
    local b = lo % 128
    -- shift the 64 bits right by 7 (logical)
    lo = math.floor(lo / 128) + (hi % 128) * 2 ^ 25
    hi = math.floor(hi / 128)
    if hi ~= 0 or lo ~= 0 then b = b + 128 end
    out[#out + 1] = string.char(b)
  until hi == 0 and lo == 0
  return table.concat(out)
end

function M.key(field, wire) return M.varint(field * 8 + wire) end
function M.len_field(field, bytes) return M.key(field, 2) .. M.varint(#bytes) .. bytes end
function M.varint_field(field, n) return M.key(field, 0) .. M.varint(n) end

-- The top-level fields of a message, in order: { { field =, wire =, value = }, ... } where
-- value is an integer (varint; its int64 reading, in the form rt.int gives), a string
-- (length-delimited) or the raw 8 / 4 bytes (fixed). Raises on malformed input.
function M.fields(bytes)
  local out, pos = {}, 1
  local function varint()
    local hi, lo, shift = 0, 0, 0
    repeat
      local b = bytes:byte(pos)
      assert(b, "pbwire: truncated varint")
      pos = pos + 1
      local v = b % 128
      -- add v << shift to the 64 bits (bits past 64 are dropped, as protobuf does)
      if shift < 32 then
        local part = v * 2 ^ shift
        lo = lo + part % 2 ^ 32
        hi = (hi + math.floor(part / 2 ^ 32)) % 2 ^ 32
      elseif shift < 64 then
        hi = (hi + v * 2 ^ (shift - 32)) % 2 ^ 32
      end
      shift = shift + 7
    until b < 0x80
    return rt.int(rt.halves_text(hi, lo))
  end
  while pos <= #bytes do
    local key = varint()
    local f, wire, value = math.floor(key / 8), key % 8, nil
    if wire == 0 then
      value = varint()
    elseif wire == 2 then
      local n = varint()
      assert(pos + n - 1 <= #bytes, "pbwire: length overruns the message")
      value = bytes:sub(pos, pos + n - 1)
      pos = pos + n
    elseif wire == 1 or wire == 5 then
      local n = wire == 1 and 8 or 4
      assert(pos + n - 1 <= #bytes, "pbwire: truncated fixed field")
      value = bytes:sub(pos, pos + n - 1)
      pos = pos + n
    else
      error("pbwire: unsupported wire type " .. wire)
    end
    out[#out + 1] = { field = f, wire = wire, value = value }
  end
  return out
end

return M
