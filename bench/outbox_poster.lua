-- One process of outbox_bench.lua's "shared" figure: post() one record at a time into the
-- outbox file PATH (made beforehand) for SECONDS, then print each post's latency summary:
--   POSTER posts=N p99_ms=X max_ms=Y
local lh = require "littlehorse"
local core = require "littlehorse.core"
package.path = "bench/?.lua;" .. package.path
local common = require "common"

local path, seconds = assert(arg[1], "PATH"), assert(tonumber(arg[2]), "SECONDS")
local ob = assert(lh.outbox(path, { max_rows = 0, max_bytes = 0, check = false }))
local lat = {}
local deadline = core.now() + seconds
repeat
  local t0 = core.now()
  assert(ob:post { wf_run_id = common.WF_RUN_ID, external_event_def_name = common.DEF_NAME, content = common.real_content() })
  lat[#lat + 1] = core.now() - t0
until core.now() >= deadline
ob:close()
table.sort(lat)
print(string.format("POSTER posts=%d p99_ms=%.3f max_ms=%.3f", #lat, lat[math.max(1, math.floor(#lat * 0.99))] * 1000,
                    lat[#lat] * 1000))
