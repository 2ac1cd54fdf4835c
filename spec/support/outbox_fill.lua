-- Posts N events with guids g1..gN into the outbox at PATH, 32 in flight, and prints one line
-- per post: "ok <guid>" once its job returned the guid, "err <guid> <code> <message>" when it
-- failed; then "done". Run by spec/outbox_faults_spec.lua in a child process (under a file
-- size limit, or on a small tmpfs).
--   lua outbox_fill.lua PATH N [BYTES]
local path, n, bytes = ...
local core = require "littlehorse.core"
n = tonumber(n)
local body = string.rep("x", tonumber(bytes or "2000"))
local ob = core._outbox(path, { max_rows = 0, max_bytes = 0 })
local function report(i, job)
  local g, err, code = job:wait(30)
  if g then print("ok " .. g)
  else print(string.format("err g%d %s %s", i, tostring(code), err and err.message or "no answer")) end
  io.stdout:flush()
end
local window = {}
for i = 1, n do
  window[#window + 1] = { i, ob:post_async { wf_run_id = "fill", external_event_def_name = "fill-event",
                                            content = body, guid = "g" .. i } }
  if #window == 32 then
    for _, w in ipairs(window) do report(w[1], w[2]) end
    window = {}
  end
end
for _, w in ipairs(window) do report(w[1], w[2]) end
ob:close()
print("done")
