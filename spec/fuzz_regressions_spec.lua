-- Regression cases from fuzzing: every file in fuzz/regressions/<target>/ (crashers that
-- scripts/fuzz.sh saved, committed once fixed) is replayed through the same property checks
-- the fuzz targets run (fuzz/checks.lua), against the normally built module. Hand-made
-- inputs follow: shapes a fuzzer of small inputs does not reach (very deep nesting) and
-- reply oddities the checks must tolerate.
local core = require "littlehorse.core"
local checks = dofile("fuzz/checks.lua")

local function files(dir)
  local list = {}
  local p = io.popen('ls -1 "' .. dir .. '" 2>/dev/null')
  if p then
    for name in p:lines() do list[#list + 1] = name end
    p:close()
  end
  table.sort(list)
  return list
end

local read_file = require("sh").read_file
local function read(path) return assert(read_file(path)) end
local pb = require "pbwire"
local varint, len_field, varint_field = pb.varint, pb.len_field, pb.varint_field

describe("fuzz regressions", function()
  for _, target in ipairs { "reply", "json", "replies" } do
    local dir = "fuzz/regressions/" .. target
    local list = files(dir)
    if #list == 0 then
      it(target .. ": no saved crashers (nothing to replay)", function() end)
    end
    for _, name in ipairs(list) do
      it(target .. ": " .. name, function()
        checks[target](core, read(dir .. "/" .. name))
      end)
    end
  end

  describe("hand-made reply inputs", function()
    -- ExternalEvent { content: VariableValue { array { items: ... } } } nested n times around
    -- an int; built from the inside out as a list of prefixes (linear, not quadratic)
    local function nested_arrays(n)
      local core_vv = "\056\001"
      local len, prefixes = #core_vv, {}
      for i = 1, n do
        local items = "\010" .. varint(len) -- Array.items (1)
        len = len + #items
        local array = "\098" .. varint(len) -- VariableValue.array (12)
        len = len + #array
        prefixes[n - i + 1] = array .. items
      end
      return "\026" .. varint(len) .. table.concat(prefixes) .. core_vv -- ExternalEvent.content (3)
    end

    it("deeply nested native arrays (up to 800 KB) are refused or decoded, never overflow the stack", function()
      for _, n in ipairs { 10, 49, 150, 1000, 20000, 100000 } do
        local bytes = nested_arrays(n)
        local ok = checks.reply(core, bytes)
        if n <= 49 then assert.is_true(ok, "depth " .. n) end
      end
    end)

    it("deeply nested JSON text in a reply is kept raw with an error, not decoded into a stack overflow", function()
      local text = string.rep("[", 100000) .. string.rep("]", 100000)
      local bytes = len_field(3, len_field(3, text))
      assert.is_true(checks.reply(core, bytes))
      local ev = core.decode_external_event(bytes)
      assert.equal("JSON_ARR", ev.content_type)
      assert.equal(core.typed_mt, getmetatable(ev.content))
      assert.matches("nesting deeper than 128", ev.content.error)
    end)

    it("a reply str that is not valid UTF-8 decodes, and posting it again is refused as misuse", function()
      local bytes = len_field(3, len_field(6, "\255\254"))
      assert.is_true(checks.reply(core, bytes))
      assert.equal("\255\254", core.decode_external_event(bytes).content)
    end)

    it("JSON content that is a scalar, or malformed, decodes without error", function()
      for _, text in ipairs { "3", "null", '"s"', "{", "[1,]", "1e400", "\255" } do
        assert.is_true(checks.reply(core, len_field(3, len_field(2, text))))
      end
    end)
  end)

  describe("core.decode_reply, the replies target's entry point", function()
    it("reads each RPC's reply as its method returns it", function()
      local def_id = len_field(1, "order-paid")
      local corr = core.decode_reply("GetCorrelatedEvent", len_field(1, len_field(1, "k-1") .. len_field(2, def_id))
                                     .. len_field(3, varint_field(7, 7))) -- content: VariableValue.int (7)
      assert.same({ key = "k-1", external_event_def_id = { name = "order-paid" } }, corr.id)
      assert.equal(7, corr.content)
      assert.equal("INT", corr.content_type)
      local defs = core.decode_reply("SearchExternalEventDef", len_field(1, len_field(1, "a")) .. len_field(1, def_id)
                                     .. len_field(2, "bm"))
      assert.same({ { name = "a" }, { name = "order-paid" } }, defs.results)
      assert.equal("bm", defs.bookmark)
      local def = core.decode_reply("GetExternalEventDef", len_field(1, def_id) .. len_field(3, varint_field(1, 3600)))
      assert.equal("order-paid", def.id.name)
      assert.equal(3600, def.seconds_after_put)
      assert.is_true(core.decode_reply("DeleteCorrelatedEvent", ""))
      assert.is_true(checks.replies(core, "\5" .. len_field(1, len_field(1, "k-1") .. len_field(2, def_id))))
    end)

    it("refuses a truncated reply of every RPC with nil and a message, and raises for an unknown RPC", function()
      for _, rpc in ipairs(checks.RPCS) do
        local v, err = core.decode_reply(rpc, "\10\5\10\3")
        assert.is_nil(v, rpc)
        assert.equal("not a valid " .. rpc .. " reply", err)
      end
      assert.error_matches(function() core.decode_reply("PutWfSpec", "") end, "unknown RPC 'PutWfSpec'")
    end)
  end)

  describe("hand-made JSON inputs", function()
    it("very deep, very long and numerically extreme texts", function()
      assert.is_false(checks.json(core, string.rep("[", 1000000)))
      assert.is_false(checks.json(core, string.rep('{"a":', 200) .. "1" .. string.rep("}", 200)))
      assert.is_true(checks.json(core, "[" .. string.rep("1,", 100000) .. "1]"))
      assert.is_true(checks.json(core, "1" .. string.rep("0", 300) .. ".5"))
      assert.is_false(checks.json(core, "1" .. string.rep("0", 400) .. ".5")) -- beyond the largest double
      assert.is_true(checks.json(core, "0." .. string.rep("0", 400) .. "1e400"))
      assert.is_true(checks.json(core, "-9223372036854775809"))
      assert.is_true(checks.json(core, '"' .. string.rep("\\ud83c\\udf89", 10000) .. '"'))
    end)
  end)
end)
