-- Protobuf wire bytes by hand, for specs that build messages the encoder never makes
-- (replies, odd or broken encodings): varints, keys, and length-delimited or varint fields.
local M = {}

-- n as a varint: a Lua integer, written as its 64-bit two's complement (negative: 10 bytes)
function M.varint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7 -- logical shift
    if n ~= 0 then b = b | 0x80 end
    out[#out + 1] = string.char(b)
  until n == 0
  return table.concat(out)
end

function M.key(field, wire) return M.varint(field << 3 | wire) end
function M.len_field(field, bytes) return M.key(field, 2) .. M.varint(#bytes) .. bytes end
function M.varint_field(field, n) return M.key(field, 0) .. M.varint(n) end

return M
