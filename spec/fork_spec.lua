-- fork(): a client made before a fork belongs to the parent's gRPC. A forked child that uses
-- it, or makes a new one, gets an error that says what happened; the parent is unaffected
-- (spec/support/fork_host.c, a real C host embedding Lua, against a real dev server).
local lh = require "littlehorse"
local devserver = require "devserver"
local shell = require "sh"

local q = shell.q
local HOST = "build/fork-host"

describe("fork", function()
  local srv

  lazy_setup(function()
    local cmd = "${CC:-gcc} -O1 -g -Wall -std=c11 -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags lua5.4) -o "
                .. q(HOST) .. " spec/support/fork_host.c $(pkg-config --libs lua5.4) 2>&1"
    local p = io.popen(cmd)
    local out = p:read("a")
    assert(p:close(), "cannot build the fork host:\n" .. out)
    srv = devserver.start { defs = { "fork-event" } }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("refuses the child, names the reason, and leaves the parent working", function()
    local p = io.popen(table.concat({ q(HOST), q(assert(os.getenv("PWD")) .. "/lua_modules"),
                                      "127.0.0.1", tostring(srv.port) }, " ") .. " 2>&1")
    local out = p:read("a")
    local ok = p:close()
    assert.is_nil(out:find("FAIL", 1, true), out)
    assert.truthy(out:find("ok child: the parent's client refuses", 1, true), out)
    assert.truthy(out:find("ok child: a new client refuses", 1, true), out)
    assert.truthy(out:find("ok parent posts after the fork", 1, true), out)
    assert.is_true(ok, out)
    -- what the parent posted is stored; the child's post never left
    local client <close> = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5 }
    for _, guid in ipairs { "before", "after" } do
      local ev = client:get_external_event { wf_run_id = "fork-wf", external_event_def_name = "fork-event", guid = guid }
      assert.are.same({ from = guid }, ev and ev.content)
    end
    local ev, _, code = client:get_external_event { wf_run_id = "fork-wf", external_event_def_name = "fork-event", guid = "child" }
    assert.is_nil(ev)
    assert.equal("NOT_FOUND", code)
  end)
end)
