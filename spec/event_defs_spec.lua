-- ExternalEventDefs in full through the client, against the dev server: content types written
-- as plain Lua (every TypeDefinition form, masks, inline struct fields with nullability and
-- defaults, VOID) read back exactly, correlated-event configs, retention, a repeated put
-- replacing the def, deletes, the server enforcing a def's type on posts, and misuse of type
-- specs named by field path.
local lh = require "littlehorse"
local devserver = require "devserver"

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  assert.is_string(err)
  assert.truthy(err:find(text, 1, true), err)
  return err
end

describe("ExternalEventDefs", function()
  local srv, client
  lazy_setup(function() srv, client = devserver.with_client({}, 5) end)
  lazy_teardown(function() devserver.release(srv, client) end)

  local n = 0
  local function put(fields)
    n = n + 1
    local req = { name = "def-" .. n }
    for k, v in pairs(fields) do req[k] = v end
    local def, err = client:put_external_event_def(req)
    assert.is_table(def, tostring(err))
    assert.same(def, assert(client:get_external_event_def(req.name)))
    return def
  end

  it("read content types back in the form they were written (canonical: a primitive by its name)", function()
    for _, prim in ipairs { "JSON_OBJ", "JSON_ARR", "DOUBLE", "BOOL", "STR", "INT", "BYTES", "WF_RUN_ID", "TIMESTAMP" } do
      assert.equal(prim, put({ content_type = prim }).type_information)
      assert.equal(prim, put({ content_type = { type = prim } }).type_information)
      assert.same({ type = prim, masked = true }, put({ content_type = { type = prim, masked = true } }).type_information)
    end
    assert.equal("VOID", put({ content_type = "VOID" }).type_information)
    local types = {
      { type = "ARRAY", array_type = "INT" },
      { type = "ARRAY", array_type = { type = "ARRAY", array_type = { type = "STR", masked = true } }, masked = true },
      { type = "MAP", key_type = "STR", value_type = { type = "ARRAY", array_type = { type = "STRUCT", name = "order", version = 3 } } },
      { type = "STRUCT", name = "order", version = 0 },
      { type = "INLINE_STRUCT", fields = {
          amount = "INT",
          note = { type = "STR", is_nullable = true, default_value = "n/a" },
          when = { type = "TIMESTAMP", masked = true },
          raw = { type = "BYTES", default_value = lh.bytes("\0\1") },
          tags = { type = "ARRAY", array_type = "STR", is_nullable = true },
          inner = { type = "INLINE_STRUCT", fields = { x = "DOUBLE" } },
          empty = { type = "INLINE_STRUCT", fields = {} },
      } },
    }
    for _, t in ipairs(types) do assert.same(t, put({ content_type = t }).type_information) end
    -- a struct type without a version is version 0
    assert.same({ type = "STRUCT", name = "s", version = 0 }, put({ content_type = { type = "STRUCT", name = "s" } }).type_information)
    -- an untyped def has no type_information at all
    assert.is_nil(put({}).type_information)
  end)

  it("read correlated-event configs and retention back", function()
    assert.same({ delete_after_first_correlation = false }, put({ correlated_event_config = true }).correlated_event_config)
    assert.same({ delete_after_first_correlation = false }, put({ correlated_event_config = {} }).correlated_event_config)
    assert.same({ ttl_seconds = 60, delete_after_first_correlation = true },
                put({ correlated_event_config = { ttl_seconds = 60, delete_after_first_correlation = true } }).correlated_event_config)
    assert.is_nil(put({ correlated_event_config = false }).correlated_event_config)
    local d = put { seconds_after_put = 3600, content_type = "INT", correlated_event_config = { ttl_seconds = 5 } }
    assert.equal(3600, d.seconds_after_put)
    assert.equal("INT", d.type_information)
    assert.same({ name = "def-" .. n }, d.id)
    assert.equal(lh.core.timestamp_mt, getmetatable(d.created_at))
    local again = assert(client:put_external_event_def_async({ name = d.id.name, seconds_after_put = 3600,
      content_type = "INT", correlated_event_config = { ttl_seconds = 5 } }):wait())
    again.created_at, d.created_at = nil, nil
    assert.same(d, again)
  end)

  it("replace a def on a repeated put (type, config and retention go with it), as the real server does", function()
    local first = assert(client:put_external_event_def { name = "replaced", content_type = "INT",
                                                          correlated_event_config = true, seconds_after_put = 60 })
    local second = assert(client:put_external_event_def { name = "replaced", content_type = { type = "ARRAY", array_type = "STR" } })
    assert.same({ type = "ARRAY", array_type = "STR" }, second.type_information)
    assert.is_nil(second.correlated_event_config)
    assert.is_nil(second.seconds_after_put)
    assert.is_true(second.created_at.seconds * 1e9 + second.created_at.nanos >= first.created_at.seconds * 1e9 + first.created_at.nanos)
    assert.same(second, assert(client:get_external_event_def { name = "replaced" }))
  end)

  it("delete a def (blocking and async); deleting one that is not there is NOT_FOUND", function()
    assert(client:put_external_event_def "gone-1")
    assert(client:put_external_event_def "gone-2")
    assert.is_true(assert(client:delete_external_event_def "gone-1"))
    assert.is_true(assert(client:delete_external_event_def_async({ name = "gone-2" }):wait()))
    for _, name in ipairs { "gone-1", "gone-2" } do
      assert.equal("NOT_FOUND", select(3, client:get_external_event_def(name)))
      local ok, err, code = client:delete_external_event_def(name)
      assert.is_nil(ok)
      assert.equal("NOT_FOUND", code)
      assert.equal("DeleteExternalEventDef", err.method)
    end
  end)

  it("make the server refuse posts of another type, and take what fits (INT in DOUBLE, an array's items)", function()
    assert(client:put_external_event_def { name = "nums", content_type = { type = "ARRAY", array_type = "DOUBLE" } })
    assert(client:put_external_event_def { name = "count", content_type = "INT" })
    local ev, err, code = client:put_external_event { wf_run_id = "w", external_event_def_name = "count", content = "7" }
    assert.is_nil(ev)
    assert.equal("INVALID_ARGUMENT", code)
    assert.equal("Invalid type of content for event. Check the return type of ExternalEventDef count: " ..
                 "Value of type STR is not compatible with expected type INT", err.message)
    assert(client:put_external_event { wf_run_id = "w", external_event_def_name = "count", content = 7 })
    assert(client:put_external_event { wf_run_id = "w", external_event_def_name = "count" }) -- NULL always fits
    assert(client:put_external_event { wf_run_id = "w", external_event_def_name = "nums", content = lh.array { 1, 2.5 } })
    ev, err = client:put_external_event { wf_run_id = "w", external_event_def_name = "nums", content = lh.array { 1, "x" } }
    assert.is_nil(ev)
    assert.matches("Array element type STR incompatible with expected element type DOUBLE", err.message)
  end)

  it("raise for a type spec that is not one, naming the field path", function()
    local before = srv:stats().calls
    local function bad(content_type, text)
      raises(function() client:put_external_event_def { name = "bad", content_type = content_type } end,
             "bad argument #1 to 'put_external_event_def' (content_type" .. text)
    end
    bad("INTT", ": unknown type 'INTT' (did you mean INT?))")
    bad("VOID ", ": unknown type 'VOID '")
    bad(5, ": expected a type: a name such as \"INT\", or a table { type = ... }, got number)")
    bad({}, ".type: required")
    bad({ type = 5 }, ".type: expected a type name, got number)")
    bad({ type = "ARRAY" }, ".array_type: required)")
    bad({ type = "ARRAY", array_type = "INT", key_type = "STR" }, ".key_type: only a MAP type has key_type)")
    bad({ type = "MAP", key_type = "STR" }, ".value_type: required)")
    bad({ type = "MAP", key_type = "STR", value_type = { type = "ARRAY", array_type = "FLOAT" } },
        ".value_type.array_type: unknown type 'FLOAT'")
    bad({ type = "STRUCT" }, ".name: required (the StructDef's name))")
    bad({ type = "STRUCT", name = "s", version = -1 }, ".version: -1 is out of range")
    bad({ type = "INT", masked = "yes" }, ".masked: expected a boolean, got string)")
    bad({ type = "INT", is_nullable = true }, ".is_nullable: only the fields of an INLINE_STRUCT have is_nullable)")
    bad({ type = "INT", maskd = true }, ".maskd: unknown field of a type (did you mean masked?))")
    bad({ type = "INLINE_STRUCT" }, ".fields: required (a table of field name = type))")
    bad({ type = "INLINE_STRUCT", fields = { "INT" } }, ".fields: field names are strings, got a number key)")
    bad({ type = "INLINE_STRUCT", fields = { a = { type = "INT", default_value = print } } },
        ".fields.a.default_value: cannot convert a function to a VariableValue)")
    bad({ type = "INLINE_STRUCT", fields = { a = { type = "MAP", key_type = "STR", value_type = "BOOLEAN" } } },
        ".fields.a.value_type: unknown type 'BOOLEAN' (did you mean BOOL?))")
    local deep = "INT"
    for _ = 1, 40 do deep = { type = "ARRAY", array_type = deep } end
    raises(function() client:put_external_event_def { name = "bad", content_type = deep } end,
           ".array_type: types nested deeper than 32 levels)")
    raises(function() client:put_external_event_def { name = "bad", correlated_event_config = { ttl_second = 5 } } end,
           "(correlated_event_config.ttl_second: unknown field of a correlated_event_config (did you mean ttl_seconds?))")
    raises(function() client:put_external_event_def { name = "bad", correlated_event_config = { ttl_seconds = 0 } } end,
           "(correlated_event_config.ttl_seconds: 0 is out of range 1..")
    raises(function() client:put_external_event_def { name = "bad", correlated_event_config = "yes" } end,
           "(correlated_event_config: expected true or { ttl_seconds =, delete_after_first_correlation = }, got string)")
    raises(function() client:put_external_event_def { name = "bad", content_tyep = "INT" } end,
           "(content_tyep: unknown field of a PutExternalEventDef request (did you mean content_type?))")
    raises(function() client:delete_external_event_def { nam = "x" } end,
           "bad argument #1 to 'delete_external_event_def' (nam: unknown field of an ExternalEventDefId (did you mean name?))")
    assert.equal(before, srv:stats().calls)
  end)
end)
