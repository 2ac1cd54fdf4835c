-- The bytes put_external_event sends, checked against encodings derived independently:
-- one vector produced by the official JS SDK's generated encoder (littlehorse-client 0.14.0,
-- recorded in shared/docs/toolchain.md), the rest written out by hand from the protobuf
-- encoding rules and the field numbers in shared/docs/littlehorse-protocol.md.
local core = require "littlehorse.core"
local lh = require "littlehorse"
local rt = require "runtime"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function encode(req)
  return hex(core.encode_put_external_event(req))
end

describe("PutExternalEventRequest wire bytes", function()
  it("match the official JS SDK's encoding of the same request", function()
    assert.equal("0a080a0677662d313233120a0a08617070726f7665641a036162632a053203796573",
      encode { wf_run_id = "wf-123", external_event_def_name = "approved", guid = "abc", content = "yes" })
  end)

  it("write zero values of oneof members and optional fields (0 is not NULL)", function()
    local head = "0a030a0177" .. "12030a0164" -- wf_run_id {id "w"}, external_event_def_id {name "d"}
    -- content { int = 0 } : field 5 (len 2) { field 7 varint 0 }
    assert.equal(head .. "2a023800", encode { wf_run_id = "w", external_event_def_name = "d", content = 0 })
    -- content { bool = false } : field 5 { field 5 varint 0 }
    assert.equal(head .. "2a022800", encode { wf_run_id = "w", external_event_def_name = "d", content = false })
    -- content { str = "" } : field 5 { field 6 len 0 }
    assert.equal(head .. "2a023200", encode { wf_run_id = "w", external_event_def_name = "d", content = "" })
    -- content { double = 0.0 } : field 5 { field 4 fixed64 0 } (a plain 0.0 is the int 0 without
    -- an integer subtype: lh.double says double on every runtime)
    assert.equal(head .. "2a09210000000000000000", encode { wf_run_id = "w", external_event_def_name = "d", content = lh.double(0) })
    if rt.subtype then
      assert.equal(head .. "2a09210000000000000000", encode { wf_run_id = "w", external_event_def_name = "d", content = 0.0 })
    else
      assert.equal(head .. "2a023800", encode { wf_run_id = "w", external_event_def_name = "d", content = 0.0 })
    end
    -- thread_run_number = 0 (field 6), node_run_position = 0 (field 7)
    assert.equal(head .. "30003800",
      encode { wf_run_id = "w", external_event_def_name = "d", thread_run_number = 0, node_run_position = 0 })
  end)

  it("omit content entirely for nil and lh.null, and the guid when absent", function()
    local head = "0a030a0177" .. "12030a0164"
    assert.equal(head, encode { wf_run_id = "w", external_event_def_name = "d" })
    assert.equal(head, encode { wf_run_id = "w", external_event_def_name = "d", content = lh.null })
  end)

  it("encode int64 extremes as 10-byte varints and negative numbers in two's complement", function()
    local head = "0a030a0177" .. "12030a0164"
    assert.equal(head .. "2a0b38ffffffffffffffffff01",
      encode { wf_run_id = "w", external_event_def_name = "d", content = -1 })
    assert.equal(head .. "2a0b3880808080808080808001",
      encode { wf_run_id = "w", external_event_def_name = "d", content = rt.MININT })
    assert.equal(head .. "2a0b3880808080808080808001",
      encode { wf_run_id = "w", external_event_def_name = "d", content = lh.int("-9223372036854775808") })
  end)

  it("nest a child WfRunId's parent in field 2", function()
    -- WfRunId { id "c", parent_wf_run_id (2) { id "p" } }
    assert.equal("0a080a016312030a0170" .. "12030a0164",
      encode { wf_run_id = { id = "c", parent_wf_run_id = { id = "p" } }, external_event_def_name = "d" })
  end)

  it("carry JSON content as text in json_obj (2) / json_arr (3) and bytes in bytes (8)", function()
    local head = "0a030a0177" .. "12030a0164"
    assert.equal(head .. "2a09" .. "12" .. "07" .. hex('{"a":1}'),
      encode { wf_run_id = "w", external_event_def_name = "d", content = { a = 1 } })
    assert.equal(head .. "2a07" .. "1a" .. "05" .. hex("[1,2]"),
      encode { wf_run_id = "w", external_event_def_name = "d", content = { 1, 2 } })
    assert.equal(head .. "2a05" .. "42" .. "03" .. "00ff01",
      encode { wf_run_id = "w", external_event_def_name = "d", content = lh.bytes("\0\255\1") })
  end)
end)

describe("ExternalEvent reply decoding", function()
  it("decodes every field, presence included", function()
    -- ExternalEvent { id (1) { wf_run_id {id "w"}, def {name "d"}, guid "g" }, created_at (2) { 1700000000, 5e6 },
    --   content (3) { int 7 }, thread_run_number (4) 0, claimed (6) true }
    local bytes = "\010\013\010\003\010\001w\018\003\010\001d\026\001g" ..
                  "\018\011\008\128\226\207\170\006\016\192\150\177\002" ..
                  "\026\002\056\007" .. "\032\000" .. "\048\001"
    local ev = assert(core.decode_external_event(bytes))
    assert.same({ wf_run_id = { id = "w" }, external_event_def_id = { name = "d" }, guid = "g" }, ev.id)
    assert.equal(1700000000, ev.created_at.seconds)
    assert.equal(5000000, ev.created_at.nanos)
    assert.equal("2023-11-14T22:13:20.005Z", tostring(ev.created_at))
    assert.equal(7, ev.content)
    assert.equal("INT", ev.content_type)
    assert.equal(0, ev.thread_run_number)
    assert.is_nil(ev.node_run_position)
    assert.is_true(ev.claimed)
  end)

  it("normalises timestamps written with negative nanos (instants before 1970)", function()
    -- created_at { seconds = 0, nanos = -500000000 }: half a second before the epoch
    local ev = assert(core.decode_external_event("\018\013\008\000\016\128\182\202\145\254\255\255\255\255\001"))
    assert.equal(-1, ev.created_at.seconds)
    assert.equal(500000000, ev.created_at.nanos)
    assert.equal("1969-12-31T23:59:59.500Z", tostring(ev.created_at))
  end)

  it("rejects bytes that are not a message", function()
    local ev, err = core.decode_external_event("\255\255\255")
    assert.is_nil(ev)
    assert.equal("not a valid ExternalEvent message", err)
  end)
end)
