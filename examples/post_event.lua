-- Post one ExternalEvent and print what the server stored, then read it back.
-- Usage: lua5.4 examples/post_event.lua [wf_run_id] [event_def_name]
-- Connects like every LittleHorse client: LHC_API_HOST, LHC_API_PORT, LHC_TENANT_ID.
local lh = require "littlehorse"

local wf_run_id = arg[1] or "demo-wf-run"
local def_name = arg[2] or "demo-event"

local client <close> = lh.client { timeout = 5 }

local event, err = client:put_external_event {
  wf_run_id = wf_run_id,
  external_event_def_name = def_name,
  content = { approved = true, amount = 42, reviewer = "ada", tags = { "fast", "manual" } },
  thread_run_number = 0,
}
if not event then
  io.stderr:write("post failed: ", tostring(err), "\n")
  os.exit(1)
end

local show = lh.json_encode  -- content tables print as the exact JSON they came from

print("posted ExternalEvent:")
local rows = {
  { "wf_run_id", event.id.wf_run_id.id },
  { "event def", event.id.external_event_def_id.name },
  { "guid", event.id.guid },
  { "created_at", tostring(event.created_at) },
  { "content_type", tostring(event.content_type) },
  { "content", show(event.content) },
  { "thread_run_number", tostring(event.thread_run_number) },
  { "claimed", tostring(event.claimed) },
}
for _, row in ipairs(rows) do print(string.format("  %-18s %s", row[1], row[2])) end

local stored, gerr = client:get_external_event(event.id)
if not stored then
  io.stderr:write("read-back failed: ", tostring(gerr), "\n")
  os.exit(1)
end
print("read back from the server: guid " .. stored.id.guid .. ", content " .. show(stored.content))
