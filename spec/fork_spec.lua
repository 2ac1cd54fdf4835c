-- fork(): clients made before a fork belong to the parent's gRPC. A forked child that uses
-- them, their call handles, or makes a new client, gets an error that says what happened, and
-- nothing it does (including collecting or closing what it inherited, and lua_close) touches
-- the parent's gRPC state: the parent's calls in flight complete and its next posts succeed
-- (spec/support/fork_host.c, a real C host embedding Lua, against a real dev server).
local lh = require "littlehorse"
local devserver = require "devserver"
local shell = require "sh"
local rt = require "runtime"

local q = shell.q
local HOST = "build/fork-host-" .. rt.name
local ROUNDS = 20 -- forks per run: a child that steals the parent's events does so in some, not all

describe("fork", function()
  local srv

  lazy_setup(function()
    local cmd = "${CC:-gcc} -O1 -g -Wall -std=c11 -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags " .. rt.pkg .. ") "
                .. "-DLUA_DIR='\"" .. rt.dir .. "\"' -o " .. q(HOST) .. " spec/support/fork_host.c $(pkg-config --libs "
                .. rt.pkg .. ") 2>&1"
    local out, code = rt.run(cmd)
    assert(code == 0, "cannot build the fork host:\n" .. out)
    -- replies come 100 ms late, so each fork happens while the parent's async calls are in flight
    srv = devserver.start { defs = { "fork-event" }, args = { "--delay-ms", "100" } }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("refuses the child everything it inherited, on every path, and leaves the parent working (" .. ROUNDS .. " forks)", function()
    local out, code = rt.run(table.concat({ q(HOST), q(rt.tree:sub(1, 1) == "/" and rt.tree or assert(os.getenv("PWD")) .. "/" .. rt.tree),
                                      "127.0.0.1", tostring(srv.port), tostring(ROUNDS) }, " ") .. " 2>&1")
    assert.is_nil(out:find("FAIL", 1, true), out)
    assert.truthy(out:find("rounds " .. ROUNDS .. "\n", 1, true), out)
    for _, check in ipairs { "child: the parent's client refuses", "child: a new client refuses",
                             "child: the parent's in-flight call refuses", "child: every client method refuses",
                             "child: tostring of inherited objects", "child: close() and collectgarbage() leave gRPC alone" } do
      local _, n = out:gsub("ok " .. check:gsub("%p", "%%%0") .. "\n", "")
      assert.equal(ROUNDS, n, check .. "\n" .. out)
    end
    local _, parent_ok = out:gsub("ok parent: its calls complete and it posts after the fork\n", "")
    assert.equal(ROUNDS, parent_ok, out)
    assert.equal(0, code, out)
    -- what the parent posted is stored; the child's posts never left
    local client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5 }
    finally(function() client:close() end)
    local function get(guid)
      return client:get_external_event { wf_run_id = "fork-wf", external_event_def_name = "fork-event", guid = guid }
    end
    for r = 0, ROUNDS - 1 do
      for _, guid in ipairs { "async-" .. r, "async-t-" .. r, "after-" .. r, "after-t-" .. r } do
        local ev = get(guid)
        assert.are.same({ from = guid }, ev and ev.content)
      end
    end
    for _, guid in ipairs { "child", "child-async" } do
      local ev, _, code = get(guid)
      assert.is_nil(ev)
      assert.equal("NOT_FOUND", code)
    end
  end)
end)
