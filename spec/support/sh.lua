-- Small helpers the specs share for files and shell commands.
local M = {}

--- The whole file, or nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a") -- "*a": also Lua 5.1
  f:close()
  return s
end

--- s quoted for /bin/sh.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

return M
