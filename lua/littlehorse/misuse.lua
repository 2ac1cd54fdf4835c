-- littlehorse.misuse: how the Lua layer reports misuse, the way the C side does. Not API.
--
-- Misuse raises a string, "bad argument #2 to 'put_external_event' (timout: unknown call
-- option (did you mean timeout?))", blamed on the caller's line: the position is that of the
-- first function up the stack that is not one of this library's Lua files (core._misuse,
-- shared with the C side), so it is right however deep in the library the check runs.
-- Runs on Lua 5.1, LuaJIT and 5.2-5.4.
local core = require "littlehorse.core"

local M = {}

--- misuse.raise(message): raise message at the caller's line.
M.raise = core._misuse

--- misuse.bad(fname, argn, message): raise "bad argument #argn to 'fname' (message)".
function M.bad(fname, argn, msg)
  core._misuse(string.format("bad argument #%d to '%s' (%s)", argn, fname, msg))
end

--- misuse.names{ "a", "b" }: a set of valid names that keeps their order, for check_keys.
function M.names(list)
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return { set = set, list = list }
end

-- Edit distance (insertions, deletions, substitutions, adjacent swaps), as src/path.c's.
local function distance(a, b)
  if #a > 63 or #b > 63 then return math.huge end
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local best = math.min(d[i - 1][j - 1] + cost, d[i - 1][j] + 1, d[i][j - 1] + 1)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        best = math.min(best, d[i - 2][j - 2] + 1)
      end
      d[i][j] = best
    end
  end
  return d[#a][#b]
end

--- misuse.nearest(name, list) -> the name in list that name is most likely a typo of, or nil.
function M.nearest(name, list)
  local best, best_d = nil, math.min(3, math.floor(#name / 3) + 1)
  for _, candidate in ipairs(list) do
    local d = distance(name, candidate)
    if d <= best_d and (best == nil or d < distance(name, best)) then best = candidate end
  end
  return best
end

local function one_of(list)
  if #list == 1 then return list[1] end
  return table.concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
end

--- misuse.unknown(key, names, what) -> "key: unknown <what> (did you mean x?)" text.
function M.unknown(key, names, what)
  if type(key) ~= "string" then
    return string.format("%ss are named %s, got a %s key", what, one_of(names.list), type(key))
  end
  local near = M.nearest(key, names.list)
  if near then return string.format("%s: unknown %s (did you mean %s?)", key, what, near) end
  return string.format("%s: unknown %s (expected %s)", key, what, one_of(names.list))
end

--- misuse.check_keys(t, names, fname, argn, what): every key of t must be in names, else
-- "bad argument #argn to 'fname' (key: unknown <what> (did you mean x?))".
function M.check_keys(t, names, fname, argn, what)
  for k in pairs(t) do
    if not names.set[k] then M.bad(fname, argn, M.unknown(k, names, what)) end
  end
end

return M
