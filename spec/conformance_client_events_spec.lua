-- Conformance of the client's newer requests and replies with the official littlehorse-client
-- 0.14.0 codec (spec/conformance/server.js, through spec/support/conformance_peer.lua).
--
-- Requests: our client makes real calls to the peer, which records each request as decoded by
-- the official decoder (when 0.14.0 has the type) and by the independent one (rawpb.js, from
-- the protocol's field tables; no unknown fields, wrong wire types or overruns allowed), and
-- both are checked field by field. What 0.14.0 lacks is checked on the independent decoding:
-- DeleteCorrelatedEventRequest and SearchCorrelatedEventRequest, ListExternalEventsRequest's
-- bookmark and limit, TypeDefinition members 5-8, VariableValue members 9-13, exact int64 and
-- timestamps below the millisecond.
-- Replies: the peer answers with messages the official encoder wrote (with the newer fields
-- appended as fields around official sub-encoders), and our decoding must be exact.
local lh = require "littlehorse"
local rt = require "runtime"
local cjson = require "cjson"
local conformance_peer = require "conformance_peer"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function problems(t, path, acc)
  acc = acc or {}
  if type(t) ~= "table" then return acc end
  for k, v in pairs(t) do
    if k == "$problems" then
      for _, p in ipairs(v) do acc[#acc + 1] = path .. ": " .. p end
    else
      problems(v, path .. "." .. tostring(k), acc)
    end
  end
  return acc
end

local function utf8(s) return { utf8 = s, hex = hex(s) } end

describe("conformance of the client's newer messages with the official 0.14.0 codec", function()
  local peer, client

  lazy_setup(function()
    peer = conformance_peer.start()
    client = lh.client { host = "127.0.0.1", port = peer.port, timeout = 10, config_file = false, tenant = "acme" }
  end)
  lazy_teardown(function()
    if client then client:close() end
    if peer then peer:stop() end
  end)

  -- Make the call, then return the peer's record of it (both decodings checked for problems).
  -- official_error: what the official decoder is expected to throw (nil: nothing).
  local function sent(method, call, official_error)
    call()
    local rec = peer:last_request(client, method)
    assert.is_nil(rec.raw_error)
    assert.equal(official_error, rec.official_error)
    assert.same({}, problems(rec.raw, "raw"))
    assert.same({ "acme" }, rec.metadata.tenantid)
    return rec.raw, rec.official, rec
  end

  describe("requests", function()
    it("PutCorrelatedEventRequest", function()
      local raw, off = sent("PutCorrelatedEvent", function()
        client:put_correlated_event { key = "order-1", external_event_def_name = "paid", content = { amount = 42 } }
      end)
      assert.same({ key = "order-1", externalEventDefId = { name = "paid" }, content = { jsonObj = '{"amount":42}' } }, off)
      assert.same(utf8("order-1"), raw.key)
      assert.same({ name = utf8("paid") }, raw.external_event_def_id)
      assert.equal("json_obj", raw.content["$member"])
      -- content the 0.14.0 decoder cannot read exactly: int64 beyond 2^53, a native array
      raw = sent("PutCorrelatedEvent", function()
        client:put_correlated_event { key = "k", external_event_def_id = { name = "d" }, content = rt.MAXINT }
      end, "Value is larger than Number.MAX_SAFE_INTEGER") -- 0.14.0 reads int64 through Number
      assert.equal("9223372036854775807", raw.content.int)
      raw, off = sent("PutCorrelatedEvent", function()
        client:put_correlated_event { key = "k", external_event_def_name = "d",
                                      content = lh.array { 1, "two", lh.timestamp { seconds = 5, nanos = 7 } } }
      end)
      assert.same({ "int", "str", "utc_timestamp" }, { raw.content.array.items[1]["$member"], raw.content.array.items[2]["$member"],
                                                       raw.content.array.items[3]["$member"] })
      assert.same({ seconds = "5", nanos = 7 }, raw.content.array.items[3].utc_timestamp)
      assert.same({}, off.content) -- member 12: unknown to 0.14.0
      -- NULL content: no field 3 at all
      raw, off = sent("PutCorrelatedEvent", function() client:put_correlated_event { key = "k", external_event_def_name = "d" } end)
      assert.is_nil(raw.content)
      assert.is_nil(off.content)
    end)

    it("CorrelatedEventId and DeleteCorrelatedEventRequest", function()
      local raw, off = sent("GetCorrelatedEvent", function()
        client:get_correlated_event { key = "ké", external_event_def_name = "paid" }
      end)
      assert.same({ key = "ké", externalEventDefId = { name = "paid" } }, off)
      assert.same({ key = utf8("ké"), external_event_def_id = { name = utf8("paid") } }, raw)
      raw, off = sent("DeleteCorrelatedEvent", function()
        client:delete_correlated_event { key = "k2", external_event_def_id = { name = "paid" } }
      end)
      assert.is_nil(off) -- 0.14.0 has no DeleteCorrelatedEventRequest
      assert.same({ id = { key = utf8("k2"), external_event_def_id = { name = utf8("paid") } } }, raw)
    end)

    it("PutExternalEventDefRequest: retention, content types, correlated-event config", function()
      local raw, off = sent("PutExternalEventDef", function()
        client:put_external_event_def { name = "paid", seconds_after_put = 3600, content_type = { type = "STR", masked = true },
                                        correlated_event_config = { ttl_seconds = 120, delete_after_first_correlation = true } }
      end)
      assert.same({ name = "paid", retentionPolicy = { secondsAfterPut = 3600 },
                    contentType = { returnType = { type = "STR", masked = true } },
                    correlatedEventConfig = { ttlSeconds = 120, deleteAfterFirstCorrelation = true } }, off)
      assert.same({ seconds_after_put = "3600", ["$member"] = "seconds_after_put" }, raw.retention_policy)
      assert.same({ return_type = { primitive_type = "STR", masked = true, ["$member"] = "primitive_type" } }, raw.content_type)
      assert.same({ ttl_seconds = "120", delete_after_first_correlation = true }, raw.correlated_event_config)
      -- JSON_OBJ is enum 0, still written (a oneof member has presence); no config, no retention
      raw, off = sent("PutExternalEventDef", function() client:put_external_event_def { name = "j", content_type = "JSON_OBJ" } end)
      assert.same({ return_type = { primitive_type = "JSON_OBJ", ["$member"] = "primitive_type" } }, raw.content_type)
      assert.same({ name = "j", retentionPolicy = {}, contentType = { returnType = { type = "JSON_OBJ", masked = false } } }, off)
      assert.is_nil(raw.correlated_event_config)
      assert.same({ ["$member"] = cjson.null }, raw.retention_policy) -- sent empty: keep forever, as the SDKs do
      -- VOID: a ReturnType without a type; an empty correlated-event config
      raw, off = sent("PutExternalEventDef", function()
        client:put_external_event_def { name = "v", content_type = "VOID", correlated_event_config = true }
      end)
      assert.same({}, raw.content_type)
      assert.same({ delete_after_first_correlation = nil }, raw.correlated_event_config)
      assert.same({ name = "v", retentionPolicy = {}, contentType = {}, correlatedEventConfig = { deleteAfterFirstCorrelation = false } }, off)
      -- TypeDefinition members 5-8 (newer than 0.14.0)
      raw, off = sent("PutExternalEventDef", function()
        client:put_external_event_def { name = "t", content_type = { type = "MAP", key_type = "STR", value_type = {
          type = "ARRAY", array_type = { type = "STRUCT", name = "order", version = 3 } } } }
      end)
      local map = raw.content_type.return_type.inline_map_def
      assert.equal("STR", map.key_type.primitive_type)
      assert.same({ name = utf8("order"), version = 3 }, map.value_type.inline_array_def.array_type.struct_def_id)
      -- 0.14.0 skips member 8 and reads the enum's default: a server of that age would take
      -- this def as JSON_OBJ (types other than primitives need 0.15 / 1.1 / 1.2, docs/api.md)
      assert.same({ returnType = { type = "JSON_OBJ", masked = false } }, off.contentType)
      raw = sent("PutExternalEventDef", function()
        client:put_external_event_def { name = "s", content_type = { type = "INLINE_STRUCT", fields = {
          n = { type = "INT", is_nullable = true, default_value = 5 } } } }
      end)
      local entry = raw.content_type.return_type.inline_struct_def.fields[1]
      assert.same(utf8("n"), entry.key)
      assert.same({ field_type = { primitive_type = "INT", ["$member"] = "primitive_type" }, is_nullable = true,
                    default_value = { int = "5", ["$member"] = "int" } }, entry.value)
    end)

    it("DeleteExternalEventDefRequest and SearchExternalEventDefRequest", function()
      local raw, off = sent("DeleteExternalEventDef", function() client:delete_external_event_def "gone" end)
      assert.same({ id = { name = "gone" } }, off)
      assert.same({ id = { name = utf8("gone") } }, raw)
      raw, off = sent("SearchExternalEventDef", function()
        client:search_external_event_defs { prefix = "", limit = 1, bookmark = "\0\255b" }
      end)
      assert.same({ prefix = "", limit = 1, bookmark = { hex = "00ff62" } }, off) -- "" is sent: explicit presence
      assert.same({ prefix = utf8(""), limit = 1, bookmark = { hex = "00ff62" } }, raw)
      raw, off = sent("SearchExternalEventDef", function() client:search_external_event_defs() end)
      assert.same({}, off)
      assert.same({}, raw)
    end)

    it("ListExternalEventsRequest, SearchExternalEventRequest, SearchCorrelatedEventRequest", function()
      local raw, off = sent("ListExternalEvents", function()
        client:list_external_events { wf_run_id = { id = "c", parent_wf_run_id = { id = "p" } }, limit = 3, bookmark = "\0\1" }
      end)
      assert.same({ wfRunId = { id = "c", parentWfRunId = { id = "p" } } }, off) -- 0.14.0: field 1 only
      assert.same({ wf_run_id = { id = utf8("c"), parent_wf_run_id = { id = utf8("p") } }, limit = 3, bookmark = { hex = "0001" } }, raw)
      local since = lh.timestamp { seconds = 1714564800, nanos = 123456789 }
      local upto = lh.timestamp "2024-05-02T00:00:00Z"
      raw, off = sent("SearchExternalEvent", function()
        client:search_external_events { external_event_def_name = "paid", is_claimed = false, limit = 7,
                                        earliest_start = since, latest_start = upto, bookmark = "bm" }
      end)
      assert.same({ externalEventDefId = { name = "paid" }, isClaimed = false, limit = 7, bookmark = { hex = hex("bm") },
                    earliestStart = "2024-05-01T12:00:00.123Z", latestStart = "2024-05-02T00:00:00.000Z" }, off)
      assert.same({ external_event_def_id = { name = utf8("paid") }, is_claimed = false, limit = 7, bookmark = { hex = hex("bm") },
                    earliest_start = { seconds = "1714564800", nanos = 123456789 }, latest_start = { seconds = "1714608000" } }, raw)
      raw, off = sent("SearchCorrelatedEvent", function()
        client:search_correlated_events { external_event_def_id = { name = "paid" }, has_external_events = false }
      end)
      assert.is_nil(off) -- 0.14.0 has no SearchCorrelatedEventRequest
      assert.same({ external_event_def_id = { name = utf8("paid") }, has_external_events = false }, raw)
    end)
  end)

  describe("replies", function()
    local ID = { wfRunId = { id = "c", parentWfRunId = { id = "p" } }, externalEventDefId = { name = "paid" }, guid = "g1" }
    local LUA_ID = { wf_run_id = { id = "c", parent_wf_run_id = { id = "p" } }, external_event_def_id = { name = "paid" }, guid = "g1" }

    it("CorrelatedEvent", function()
      peer:queue_reply(client, { method = "PutCorrelatedEvent", type = "CorrelatedEvent", msg = {
        id = { key = "order-1", externalEventDefId = { name = "paid" } }, createdAt = "2024-05-01T12:00:00.250Z",
        content = { str = "ok\0" }, externalEvents = { ID, { wfRunId = { id = "w2" }, externalEventDefId = { name = "paid" }, guid = "g2" } } } })
      local ce = assert(client:put_correlated_event { key = "order-1", external_event_def_name = "paid" })
      assert.same({ id = { key = "order-1", external_event_def_id = { name = "paid" } }, created_at = lh.timestamp "2024-05-01T12:00:00.250Z",
                    content = "ok\0", content_type = "STR",
                    external_events = { LUA_ID, { wf_run_id = { id = "w2" }, external_event_def_id = { name = "paid" }, guid = "g2" } } }, ce)
      -- a content member 0.14.0 lacks, around official sub-encoders; no external events
      peer:queue_reply(client, { method = "GetCorrelatedEvent", type = "CorrelatedEvent",
        msg = { id = { key = "k", externalEventDefId = { name = "d" } } },
        parts = { { field = 3, value = { array = { { int = "-9223372036854775808" }, { wf_run_id = { id = "w" } } } } } } })
      ce = assert(client:get_correlated_event { key = "k", external_event_def_name = "d" })
      assert.equal("ARRAY", ce.content_type)
      assert.same({ rt.MININT, lh.wf_run_id { id = "w" } }, ce.content.value)
      assert.same({}, ce.external_events)
      assert.is_nil(ce.created_at)
    end)

    it("ExternalEventDef: retention, type information (0.14.0's and newer), correlated-event config", function()
      peer:queue_reply(client, { method = "PutExternalEventDef", type = "ExternalEventDef", msg = {
        id = { name = "paid" }, createdAt = "2024-05-01T12:00:00.000Z", retentionPolicy = { secondsAfterPut = 86400 },
        typeInformation = { returnType = { type = "INT", masked = true } },
        correlatedEventConfig = { ttlSeconds = 30, deleteAfterFirstCorrelation = true } } })
      assert.same({ id = { name = "paid" }, created_at = lh.timestamp "2024-05-01T12:00:00Z", seconds_after_put = 86400,
                    type_information = { type = "INT", masked = true },
                    correlated_event_config = { ttl_seconds = 30, delete_after_first_correlation = true } },
                  assert(client:put_external_event_def "paid"))
      peer:queue_reply(client, { method = "GetExternalEventDef", type = "ExternalEventDef",
        msg = { id = { name = "v" }, typeInformation = {}, correlatedEventConfig = {} } })
      assert.same({ id = { name = "v" }, type_information = "VOID", correlated_event_config = { delete_after_first_correlation = false } },
                  assert(client:get_external_event_def "v"))
      -- ReturnType { TypeDefinition { inline_map_def { key STR, value inline_array_def { struct_def_id } } } }
      peer:queue_reply(client, { method = "GetExternalEventDef", type = "ExternalEventDef", msg = { id = { name = "t" } },
        parts = { { field = 4, parts = { { field = 1, parts = { { field = 8, parts = {
          { field = 1, type = "TypeDefinition", msg = { type = "STR" } },
          { field = 2, parts = { { field = 6, parts = { { field = 1, parts = {
            { field = 5, type = "StructDefId", msg = { name = "order", version = 3 } } } } } } } },
        } }, { field = 4, varint = 1 } } } } } } })
      assert.same({ type = "MAP", masked = true, key_type = "STR", value_type = { type = "ARRAY",
                    array_type = { type = "STRUCT", name = "order", version = 3 } } },
                  assert(client:get_external_event_def "t").type_information)
    end)

    it("ExternalEventList, ExternalEventIdList, CorrelatedEventIdList, ExternalEventDefIdList, Empty", function()
      peer:queue_reply(client, { method = "ListExternalEvents", type = "ExternalEventList", msg = { results = {
          { id = ID, createdAt = "2024-05-01T12:00:00.001Z", content = { double = 2.5 }, threadRunNumber = 0, claimed = true },
          { id = ID } } },
        parts = { { field = 2, hex = "00ff" } } }) -- ExternalEventList.bookmark: newer than 0.14.0
      assert.same({ results = {
          { id = LUA_ID, created_at = lh.timestamp "2024-05-01T12:00:00.001Z", content = 2.5, content_type = "DOUBLE",
            thread_run_number = 0, claimed = true },
          { id = LUA_ID, claimed = false } }, bookmark = "\0\255" },
        assert(client:list_external_events { wf_run_id = "c" }))
      peer:queue_reply(client, { method = "SearchExternalEvent", type = "ExternalEventIdList",
        msg = { results = { ID }, bookmark = { ["$hex"] = "0102" } } })
      assert.same({ results = { LUA_ID }, bookmark = "\1\2" },
                  assert(client:search_external_events { external_event_def_name = "paid" }))
      peer:queue_reply(client, { method = "SearchCorrelatedEvent", parts = {
        { field = 1, type = "CorrelatedEventId", msg = { key = "k1", externalEventDefId = { name = "paid" } } },
        { field = 1, type = "CorrelatedEventId", msg = { key = "k2", externalEventDefId = { name = "paid" } } } } })
      assert.same({ results = { { key = "k1", external_event_def_id = { name = "paid" } },
                                { key = "k2", external_event_def_id = { name = "paid" } } } },
                  assert(client:search_correlated_events { external_event_def_name = "paid" }))
      peer:queue_reply(client, { method = "SearchExternalEventDef", type = "ExternalEventDefIdList",
        msg = { results = { { name = "a" }, { name = "b" } }, bookmark = { ["$hex"] = "" } } })
      assert.same({ results = { { name = "a" }, { name = "b" } } }, assert(client:search_external_event_defs()))
      assert.is_true(assert(client:delete_correlated_event { key = "k", external_event_def_name = "d" }))
      assert.is_true(assert(client:delete_external_event_def "d"))
    end)
  end)
end)
