-- fork() with an outbox open and posts in flight: the child is refused everything it
-- inherited (the outbox and its jobs: the writer thread is the parent's, and SQLite forbids
-- using a connection across fork), closing and collecting them does nothing, and the parent's
-- writer, jobs and file carry on (spec/support/forker.c runs spec/support/outbox_fork.lua).
local sh = require "sh"
local rt = require "runtime"

local q = sh.q
local HOST = "build/forker-" .. rt.name
local ROUNDS = 10

describe("outbox and fork", function()
  local dir

  lazy_setup(function()
    local p = io.popen("${CC:-gcc} -O1 -g -Wall -std=c11 -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags " .. rt.pkg .. ") -o "
                       .. q(HOST) .. " spec/support/forker.c $(pkg-config --libs " .. rt.pkg .. ") 2>&1")
    local out = p:read("*a")
    assert(p:close(), "cannot build the forker:\n" .. out)
    dir = io.popen("mktemp -d /tmp/lh-outbox.XXXXXX"):read("*l")
  end)
  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("refuses the child the inherited outbox and jobs, and leaves the parent working (" .. ROUNDS .. " forks)", function()
    local p = io.popen(table.concat({ q(HOST), "spec/support/outbox_fork.lua", q(rt.tree:sub(1, 1) == "/" and rt.tree or assert(os.getenv("PWD")) .. "/" .. rt.tree),
                                      q(dir .. "/fork.db"), tostring(ROUNDS) }, " ") .. " 2>&1")
    local out = p:read("*a")
    local ok = p:close()
    assert.is_nil(out:find("FAIL", 1, true), out)
    assert.truthy(out:find("rounds " .. ROUNDS .. "\n", 1, true), out)
    for _, check in ipairs { "child: every method refuses", "child: tostring of the outbox",
                             "child: close() and collectgarbage() return", "child: an outbox of its own posts",
                             "child: the parent's file is refused",
                             "parent: the child exited normally", "parent: its posts complete and it posts after the fork" } do
      local _, n = out:gsub("ok " .. check:gsub("%p", "%%%0") .. "\n", "")
      assert.equal(ROUNDS, n, check .. "\n" .. out)
    end
    assert.truthy(out:find("ok parent: the file holds every post\n", 1, true), out)
    assert.is_true(ok, out)
  end)
end)
