-- Posts events into the outbox at PATH through littlehorse.outbox for ever, delivering to the
-- dev server on PORT between posts (step()), and prints "<wf_run_id> <guid>" once each post has
-- returned its guid (durable); every third post is a CorrelatedEvent (def "crash-corr"),
-- printed "correlated <key>" once its key is returned. Run by spec/outbox_crash_spec.lua, which kill -9s it at moments
-- of its choosing while the dev server goes up and down.
--   lua outbox_poster.lua PATH PORT TAG
local path, port, tag = ...
local lh = require "littlehorse"
io.stdout:setvbuf("no")
local client = lh.client { host = "127.0.0.1", port = tonumber(port), timeout = 0.5,
                           config_file = false }
local ob = assert(lh.outbox(path, { client = client, batch = 16, initial_backoff = 0.02, max_backoff = 0.2,
                                    poll_interval = 0.02, lease = 2 }))
local n = 0
while true do
  n = n + 1
  local wf, guid, err
  if n % 3 == 0 then
    wf = "correlated"
    guid, err = ob:post_correlated_event("ck-" .. tag .. "-" .. n, "crash-corr", { n = n })
  else
    wf = "crash-" .. tag .. "-" .. (n % 5)
    guid, err = ob:post { wf_run_id = wf, external_event_def_name = "crash-event", content = { n = n } }
  end
  if guid then io.stdout:write(wf, " ", guid, "\n")
  else io.stderr:write("post failed: ", tostring(err), "\n") end
  ob:step()
end
