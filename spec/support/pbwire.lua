-- Protobuf wire bytes by hand, for specs that build messages the encoder never makes
-- (replies, odd or broken encodings, the dev server's DevServer hooks): varints, keys, and
-- length-delimited or varint fields; and a reader for the fields of a message.
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

function M.key(field, wire) -- The top-level fields of a message, in order: { { field =, wire =, value = }, ... } where
-- value is an integer (varint), a string (length-delimited) or the raw 8 / 4 bytes (fixed).
-- Raises on malformed input.
function M.fields(bytes)
  local out, pos = {}, 1
  local function varint()
    local v, shift = 0, 0
    repeat
      local b = bytes:byte(pos)
      assert(b, "pbwire: truncated varint")
      pos = pos + 1
      v = v | ((b & 0x7f) << shift)
      shift = shift + 7
    until b < 0x80
    return v
  end
  while pos <= #bytes do
    local key = varint()
    local f, wire, value = key >> 3, key & 7, nil
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

return M.varint(field << 3 | wire) end
function M.len_field(field, bytes) -- The top-level fields of a message, in order: { { field =, wire =, value = }, ... } where
-- value is an integer (varint), a string (length-delimited) or the raw 8 / 4 bytes (fixed).
-- Raises on malformed input.
function M.fields(bytes)
  local out, pos = {}, 1
  local function varint()
    local v, shift = 0, 0
    repeat
      local b = bytes:byte(pos)
      assert(b, "pbwire: truncated varint")
      pos = pos + 1
      v = v | ((b & 0x7f) << shift)
      shift = shift + 7
    until b < 0x80
    return v
  end
  while pos <= #bytes do
    local key = varint()
    local f, wire, value = key >> 3, key & 7, nil
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

return M.key(field, 2) .. M.varint(#bytes) .. bytes end
function M.varint_field(field, n) -- The top-level fields of a message, in order: { { field =, wire =, value = }, ... } where
-- value is an integer (varint), a string (length-delimited) or the raw 8 / 4 bytes (fixed).
-- Raises on malformed input.
function M.fields(bytes)
  local out, pos = {}, 1
  local function varint()
    local v, shift = 0, 0
    repeat
      local b = bytes:byte(pos)
      assert(b, "pbwire: truncated varint")
      pos = pos + 1
      v = v | ((b & 0x7f) << shift)
      shift = shift + 7
    until b < 0x80
    return v
  end
  while pos <= #bytes do
    local key = varint()
    local f, wire, value = key >> 3, key & 7, nil
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

return M.key(field, 0) .. M.varint(n) end

-- The top-level fields of a message, in order: { { field =, wire =, value = }, ... } where
-- value is an integer (varint), a string (length-delimited) or the raw 8 / 4 bytes (fixed).
-- Raises on malformed input.
function M.fields(bytes)
  local out, pos = {}, 1
  local function varint()
    local v, shift = 0, 0
    repeat
      local b = bytes:byte(pos)
      assert(b, "pbwire: truncated varint")
      pos = pos + 1
      v = v | ((b & 0x7f) << shift)
      shift = shift + 7
    until b < 0x80
    return v
  end
  while pos <= #bytes do
    local key = varint()
    local f, wire, value = key >> 3, key & 7, nil
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
