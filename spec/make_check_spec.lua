-- `make check`, the contributors' quick loop: the build, the dev server and busted under
-- Lua 5.4, and nothing that installs packages or runs the extra suites (`make test` does).
local shell = require "sh"

describe("make check", function()
  -- What make would run with every target out of date (-B), without running it (-n); no
  -- directory lines, which make prints when this spec itself runs under make (make test).
  local function commands()
    local out = os.tmpname()
    local ok = os.execute("make --no-print-directory -n -B check >" .. shell.q(out) .. " 2>&1")
    local text = assert(shell.read_file(out))
    os.remove(out)
    assert(ok == true or ok == 0, text)
    return text
  end

  it("builds the rock and the dev server, then runs busted", function()
    local text = commands()
    assert.matches("luarocks %-%-lua%-version=5%.4 %-%-tree [^\n]* make littlehorse%-client%-[%d.%-]+%.rockspec", text)
    assert.matches("%-o [^\n]*/build/lh%-devserver ", text)
    local last = text:match("([^\n]+)\n*$")
    assert.equal("busted", last)
  end)

  it("installs nothing and runs none of the extra suites", function()
    local text = commands()
    for _, what in ipairs({ "deps.sh", "deps-extra.sh", "apt", "scripts/test.sh", "scripts/suites", "build-variant",
                            "build-lua.sh", "proto-check" }) do
      assert.is_nil(text:find(what, 1, true), what)
    end
  end)
end)
