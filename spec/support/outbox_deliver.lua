-- Delivers what the outbox at PATH holds, with a client of the dev server on PORT, and prints
-- "delivered D dead X pending P error E". With "requeue", first puts every dead letter back to
-- pending ("requeued N" or "requeue failed E"). Run by spec/outbox_faults_spec.lua in a child
-- process whose environment points SQLite's temporary files at a full disk.
--   lua outbox_deliver.lua PATH PORT [requeue]
local path, port, what = ...
local lh = require "littlehorse"
local client = lh.client { host = "127.0.0.1", port = tonumber(port), timeout = 5, config_file = false }
local ob = assert(lh.outbox(path, { client = client, initial_backoff = 0.01, max_backoff = 0.05,
                                    poll_interval = 0.05 }))
if what == "requeue" then
  local n, err = ob:requeue("all")
  print(n and ("requeued " .. n) or ("requeue failed " .. tostring(err)))
end
local c = ob:drain(20)
local failure = ob._deliverer and ob._deliverer.last_error
print(string.format("delivered %d dead %d pending %s error %s", c.delivered, c.dead, tostring(c.pending),
                    tostring(failure)))
ob:close()
client:close()
