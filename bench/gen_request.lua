-- Writes the reference request bytes that every client sends: our own encoder's output for
-- the request in bench/common.lua (JSON keys sorted; exits 3 if this process's hash seed
-- cannot give that order, and run.sh starts it again).
--   lua5.4 bench/gen_request.lua OUT.bin
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local common = require "common"
local core = require "littlehorse.core"

local out = assert(arg[1], "usage: gen_request.lua OUT.bin")
local _, exact, bytes = common.request(core, nil)
if not exact then os.exit(common.EXIT_RETRY) end
local f = assert(io.open(out, "wb"))
f:write(bytes)
f:close()
print(string.format("request: %d bytes: %s", #bytes, common.hex(bytes)))
