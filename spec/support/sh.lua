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

--- Another process (the sqlite3 shell) holds the write lock of the SQLite file at path for
-- `seconds` (dir: a scratch directory for its marker files); returns once it holds it, with a
-- function that says whether it has let go. Needs littlehorse.core (its clock and sleep).
function M.hold_sqlite_lock(dir, path, seconds)
  local core = require "littlehorse.core"
  local rt = require "runtime"
  local held, done = dir .. "/held", dir .. "/done"
  os.remove(held)
  os.remove(done)
  assert(rt.execute(string.format("(echo 'BEGIN IMMEDIATE;'; echo '.shell touch %s'; sleep %g; echo 'COMMIT;') " ..
                                  "| sqlite3 %s >/dev/null 2>&1 && touch %s &", M.q(held), seconds, M.q(path),
                                  M.q(done))) == true)
  local deadline = core.now() + 30
  while not M.read_file(held) do
    assert(core.now() < deadline, "the sqlite3 shell did not take the lock")
    core.sleep(0.01)
  end
  return function() return M.read_file(done) ~= nil end
end

--- The first column of the rows that the sqlite3 shell prints for query on the file at path.
function M.sqlite(path, query)
  local p = io.popen("sqlite3 " .. M.q(path) .. " " .. M.q(query) .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

return M
