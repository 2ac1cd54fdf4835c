-- The lifetime rules of docs/api.md "Lua code during a call": conversion never keeps a pointer to
-- the caller's strings that the caller's own code could free, whatever Lua code runs while a
-- request is converted. Lua code can run there in two ways:
--   * a metamethod: requests, typed values and call options are read raw, so none is called
--     (a typed TIMESTAMP whose `value` has an __index, an __index added to lh's typed-value
--     metatable);
--   * a `__gc` finalizer, at any allocation: JSON text given to lh.json_arr / lh.json_obj is
--     checked while the request is converted, and a string in it with escapes and longer
--     than the checker's 2 KiB scratch space takes a buffer of its own (an allocation); the
--     texts here have hundreds of them.
-- The code that runs empties the request (ids, def name, guid, nested str / bytes / struct
-- names and field names / map keys / WfRunIds, metadata), collects, and allocates many
-- strings of the same sizes, so that freed memory is reused at once. Each case asserts what
-- the dev server stored or answered, for the blocking and the async form of the call.
--
-- A pointer kept into an unanchored string shows as junk stored ids ("###...#"), as
-- ALREADY_EXISTS for events never sent, or as heap-use-after-free in the packer under ASan. The GC
-- torture run (scripts/suites/gc.sh: every object allocation inside a call collects first)
-- runs this file too, minus the #finalizer cases: its emergency collections do not call
-- finalizers.
local lh = require "littlehorse"
local devserver = require "devserver"
local rt = require "runtime"

local core = lh.core

-- Victim strings are longer than 40 bytes: shorter ones are interned, so the spec's own
-- constant would keep them alive. Lengths on both sides of the copy/anchor limit (512).
local TOKEN = ("lifetime-token-"):rep(5)
local DEF = "lifetime-def" .. ("-abcdef"):rep(6) .. "-z" -- a valid def name (a hostname)
local CORRELATED_DEF = "lifetime-correlated" .. ("-abcdef"):rep(6) .. "-z"
local SHORT, LONG = 60, 700

-- A new string object with the bytes of s (long strings are not interned).
local function fresh(s) return (s .. "."):sub(1, -2) end
local function text(tag, n, i) return (tag .. ("%06d"):format(i)):rep(math.floor(n / 7) + 1):sub(1, n) end

-- Clear the stack slots above the running function: a finished call leaves its values
-- there, the collector marks the running function's whole frame, and a string the request
-- no longer holds would stay alive and hide the bug.
local scrub
do
  local names = {}
  for i = 1, 180 do names[i] = "v" .. i end
  scrub = assert(rt.load("local " .. table.concat(names, ", ") .. " return nil"))
end

-- New strings of the victims' sizes, kept until the next pressure (freed memory is reused by
-- them: a pointer into a freed string then reads "###...").
local held
local function pressure()
  held = {}
  for i = 1, 1500 do
    local n = i % 2 == 0 and SHORT or LONG
    held[i] = ("#"):rep(n - 6) .. ("%06d"):format(i)
  end
end

local function collect_and_reuse()
  collectgarbage()
  collectgarbage()
  pressure()
end

-- JSON array text whose decoding allocates a few MB of strings of the victims' sizes.
local function big_json(seed)
  local items = {}
  for i = 1, 1500 do
    if i % 5 == 0 then
      items[i] = '"' .. ("#\\t"):rep(800) .. '"' -- checking it allocates (see the top)
    else
      items[i] = '"' .. ("#"):rep(i % 2 == 0 and SHORT or LONG) .. '"'
    end
  end
  items[1] = '"' .. seed .. '"'
  return "[" .. table.concat(items, ",") .. "]"
end

-- A content value holding a str, bytes, a struct name and field name, a map key and a WfRunId
-- id, each short and long, as one native array; `dropper(content)` empties it in place.
local function nested(i)
  local s1, s2 = text("s", SHORT, i), text("S", LONG, i)
  local fields = { [text("k", SHORT, i)] = lh.str(text("f", SHORT, i)), [text("K", LONG, i)] = lh.str(text("F", LONG, i)) }
  local items = {
    lh.str(s1), lh.str(s2), lh.bytes(text("b", SHORT, i)), lh.bytes(text("B", LONG, i)),
    lh.struct(text("n", SHORT, i), 1, fields), lh.struct(text("N", LONG, i), 2, {}),
    lh.map { { text("m", SHORT, i), 1 }, { text("M", LONG, i), 2 } },
    lh.wf_run_id { id = text("w", SHORT, i), parent_wf_run_id = { id = text("W", LONG, i) } },
  }
  return items
end

-- What nested(i) reads back as (replies mark bytes and native items as typed values).
local function nested_reply(i)
  local function typed(t) return setmetatable(t, core.typed_mt) end
  local fields = { [text("k", SHORT, i)] = text("f", SHORT, i), [text("K", LONG, i)] = text("F", LONG, i) }
  return {
    text("s", SHORT, i), text("S", LONG, i),
    typed { type = "BYTES", value = text("b", SHORT, i) }, typed { type = "BYTES", value = text("B", LONG, i) },
    typed { type = "STRUCT", name = text("n", SHORT, i), version = 1, value = fields },
    typed { type = "STRUCT", name = text("N", LONG, i), version = 2, value = {} },
    typed { type = "MAP", value = { { text("m", SHORT, i), 1 }, { text("M", LONG, i), 2 } } },
    typed { type = "WF_RUN_ID", value = { id = text("w", SHORT, i), parent_wf_run_id = { id = text("W", LONG, i) } } },
  }
end

local function empty_nested(items)
  for _, v in ipairs(items) do
    if v.type == "STRUCT" then
      v.name = nil
      for k in pairs(v.value) do v.value[k] = nil end
    elseif v.type == "MAP" then
      for _, pair in ipairs(v.value) do pair[1] = nil end
    elseif v.type == "WF_RUN_ID" then
      v.value.id, v.value.parent_wf_run_id = nil, nil
    else
      v.value = nil
    end
  end
end

local n = 0
local function ids(i)
  n = n + 1
  local tag = ("%s-%06d-"):format(i, n)
  return (tag .. ("w"):rep(SHORT)):sub(1, SHORT), (tag .. ("g"):rep(LONG)):sub(1, LONG), tag
end

-- A request with fresh copies of every string (nothing else holds them), and its ids.
local function request(i, content)
  local wf, guid = ids(i)
  return { wf_run_id = fresh(wf), external_event_def_name = fresh(DEF), guid = fresh(guid), content = content },
         { wf_run_id = wf, external_event_def_name = DEF, guid = guid }
end

local function drop_ids(r)
  r.wf_run_id, r.external_event_def_name, r.guid = nil, nil, nil
end

if LH_GC_TORTURE then -- spec/support/gc_torture.lua under spec/support/gc_torture_host.c
  it("the GC torture run is armed: object allocations inside a call force collections", function()
    local before = LH_GC_TORTURE.refused()
    lh.core.encode_put_external_event { wf_run_id = "w", external_event_def_name = "d", content = { a = { 1 } } }
    local _ = {} -- outside a call: no forced collection
    assert.is_true(LH_GC_TORTURE.refused() > before)
  end)

  it("the GC torture run covers the client's calls (the C methods the littlehorse client binds)", function()
    local c = lh.client { host = "127.0.0.1", port = 1, timeout = 0.5, config_file = false }
    local before = LH_GC_TORTURE.refused()
    c:put_external_event { wf_run_id = "w", external_event_def_name = "d", content = { a = { 1 } } }
    assert.is_true(LH_GC_TORTURE.refused() > before)
    before = LH_GC_TORTURE.refused()
    c:get_external_event_def_async("d"):wait(1)
    assert.is_true(LH_GC_TORTURE.refused() > before)
    c:close()
  end)
end

describe("strings the caller drops while a request is converted", function()
  -- Two servers: one that wants a token in the metadata (for the cases about metadata), one
  -- that does not (a call with metadata has headers to read before its request).
  local srv, client, tsrv, tclient

  lazy_setup(function()
    srv, client = devserver.with_client({ defs = { DEF } }, 10)
    assert(client:put_external_event_def { name = CORRELATED_DEF, correlated_event_config = true })
    tsrv, tclient = devserver.with_client({ defs = { DEF }, args = { "--require-token", TOKEN } }, 10)
  end)
  lazy_teardown(function()
    devserver.release(srv, client)
    devserver.release(tsrv, tclient)
  end)

  local function opts() return { reply = false } end
  local function token_opts() return { reply = false, metadata = { authorization = fresh(TOKEN) } } end

  -- Post r in the given form (to the token server when o has metadata); true when stored.
  local function post(form, r, o)
    local c = o.metadata and tclient or client
    if form == "blocking" then return c:put_external_event(r, o) end
    local h = assert(c:put_external_event_async(r, o))
    return h:wait(10)
  end

  -- The event stored under the original ids must exist, with the expected content.
  local function stored(id, content, kind, c)
    local ev, err = (c or client):get_external_event(id, { metadata = c and { authorization = TOKEN } or nil })
    assert(ev, "the event was not stored under the ids the request had: " .. tostring(err))
    assert.equal(id.wf_run_id, ev.id.wf_run_id.id)
    assert.equal(id.guid, ev.id.guid)
    assert.equal(kind, ev.content_type)
    if content ~= nil then assert.same(content, ev.content) end
    return ev
  end

  for _, form in ipairs { "blocking", "async" } do
    describe(form, function()
      it("a typed TIMESTAMP whose value has an __index that empties the request: never called", function()
        local calls = 0
        local r, id = request(form)
        local value = setmetatable({ seconds = 0 }, { __index = function()
          calls = calls + 1
          drop_ids(r)
          collect_and_reuse()
          return 0
        end })
        r.content = setmetatable({ type = "TIMESTAMP", value = value }, core.typed_mt)
        scrub()
        local ok, err = post(form, r, opts())
        assert(ok, tostring(err))
        assert.equal(0, calls)
        local ev = stored(id, nil, "TIMESTAMP")
        assert.equal(0, ev.content.seconds)
      end)

      -- No collection of its own: the GC torture run frees what it drops at the next allocation.
      it("a metamethod that only empties the request, then allocates: never called", function()
        local calls = 0
        local r, id = request(form)
        local value = setmetatable({ seconds = 0 }, { __index = function()
          calls = calls + 1
          drop_ids(r)
          held = { ("#"):rep(SHORT - 6) .. "000001", ("#"):rep(LONG - 6) .. "000002" }
          return 0
        end })
        r.content = setmetatable({ type = "TIMESTAMP", value = value }, core.typed_mt)
        scrub()
        local ok, err = post(form, r, opts())
        assert(ok, tostring(err))
        assert.equal(0, calls)
        stored(id, nil, "TIMESTAMP")
      end)

      it("an __index added to the typed-value metatable (read for a missing `value`): never called", function()
        local calls = 0
        local r, id = request(form)
        core.typed_mt.__index = function()
          calls = calls + 1
          drop_ids(r)
          collect_and_reuse()
          return "from __index"
        end
        local ok, err = pcall(function()
          r.content = lh.array { setmetatable({ type = "NULL" }, core.typed_mt), lh.str(text("x", LONG, 1)) }
          scrub()
          return assert(post(form, r, opts()))
        end)
        core.typed_mt.__index = nil
        assert(ok, tostring(err))
        assert.equal(0, calls)
        stored(id, setmetatable({ type = "ARRAY", value = { lh.null, text("x", LONG, 1) } }, core.typed_mt), "ARRAY")
      end)

      it("a metamethod on a typed value inside content that empties the nested values: never called", function()
        local calls = 0
        local r, id = request(form)
        local items = nested(1)
        items[#items + 1] = setmetatable({ type = "TIMESTAMP", value = setmetatable({ seconds = 7 }, { __index = function()
          calls = calls + 1
          empty_nested(items)
          drop_ids(r)
          collect_and_reuse()
          return 0
        end }) }, core.typed_mt)
        r.content = lh.array(items)
        scrub()
        local ok, err = post(form, r, opts())
        assert(ok, tostring(err))
        assert.equal(0, calls)
        local ev = stored(id, nil, "ARRAY")
        local want = nested_reply(1)
        for k = 1, #want do assert.same(want[k], ev.content.value[k]) end
        assert.equal(7, ev.content.value[#want + 1].seconds)
      end)

      -- A finalizer that runs during the conversion: the collector is made incremental, a
      -- new cycle starting as soon as one ends, so that cycles end every few tens of KB of
      -- allocation. The object whose __gc empties the request is garbage from the start: the
      -- JSON checking (its scratch buffers, about a MB) ends a cycle that finalizes it, then another that frees what
      -- it dropped, then reuses that memory. It acts only when it runs inside a call of the
      -- module (a C function called by a C function: the method and its protected body); run
      -- anywhere else (Lua code before the call), it arms a new one. Attempt k lets its
      -- first k - 1 runs inside the module pass (arming a new one each time), so that if a
      -- run comes before the request has been read (the call refuses the emptied request),
      -- a later attempt acts at a later run.
      local function inside_module()
        local up, upper = debug.getinfo(3, "S"), debug.getinfo(4, "S")
        return up ~= nil and upper ~= nil and up.what == "C" and upper.what == "C"
      end

      -- Returns fired (it acted), then pcall's results of call().
      local function with_finalizer(action, call, skip)
        local fired = false
        local armed = true
        local runs = 0
        local pause, stepmul
        local function restore() -- back to the run's settings (the GC suites have theirs)
          collectgarbage("setpause", pause)
          collectgarbage("setstepmul", stepmul)
        end
        local function arm()
          rt.finalizer(function()
            if not armed then return end
            if inside_module() then runs = runs + 1 end
            if not inside_module() or runs <= (skip or 0) then
              arm()
              return
            end
            armed = false
            restore()
            fired = action()
          end)
        end
        local mode = rt.name == "5.4" and collectgarbage("incremental")
        -- 5.3, 5.1, LuaJIT: each step a whole cycle (their step does not grow with the heap, and
        -- the suite's heap is tens of MB), until the finalizer has acted (restore)
        pause, stepmul = collectgarbage("setpause", 100), collectgarbage("setstepmul", rt.name == "5.4" and 100 or 1000000)
        collectgarbage()
        arm()
        scrub()
        local res = rt.pack(pcall(call))
        armed = false
        restore()
        if mode then collectgarbage(mode) end
        return fired, rt.unpack(res, 1, res.n)
      end

      -- make(k) -> request, ids, options, action; check(ids) after a call the finalizer ran in.
      -- call(form, request, options): the call to make (default: post, a PutExternalEvent).
      local function finalizer_case(make, check, call)
        local tries = {}
        for k = 1, 5 do
          local r, id, o, action = make(k)
          local fired, ok, got, err = with_finalizer(function() return action(r, o) end,
                                                     function() return (call or post)(form, r, o) end, k - 1)
          local early = not ok -- it ran before (part of) the request was read: refused
          if fired and not early then
            assert(ok, tostring(got))
            assert(got, tostring(err))
            return check(id)
          end
          tries[#tries + 1] = fired and "before the request was read (" .. tostring(got) .. ")" or "not inside the call"
        end
        error("the finalizer never ran while the request was converted: " .. table.concat(tries, ", "))
      end

      it("a finalizer that empties the request while JSON content is decoded #finalizer", function()
        finalizer_case(function(k)
          local r, id = request(form .. k, lh.json_arr(big_json("first")))
          return r, id, opts(), function()
            drop_ids(r)
            pressure()
            return true
          end
        end, function(id) stored(id, nil, "JSON_ARR") end)
      end)

      it("a finalizer that empties nested str, bytes, struct, map and WfRunId values #finalizer", function()
        finalizer_case(function(k)
          local items = nested(2)
          items[#items + 1] = lh.json_arr(big_json("nested"))
          local r, id = request(form .. k, lh.array(items))
          return r, id, opts(), function()
            empty_nested(items)
            drop_ids(r)
            pressure()
            return true
          end
        end, function(id)
          local ev = stored(id, nil, "ARRAY")
          local want = nested_reply(2)
          for k = 1, #want do assert.same(want[k], ev.content.value[k]) end
        end)
      end)

      it("a finalizer that empties the request and its metadata (the token header) #finalizer", function()
        finalizer_case(function(k)
          local r, id = request(form .. k, lh.json_obj('{"a":' .. big_json("meta") .. "}"))
          return r, id, token_opts(), function(_, o)
            drop_ids(r)
            o.metadata.authorization = nil
            o.metadata = nil
            pressure()
            return true
          end
        end, function(id) stored(id, nil, "JSON_OBJ", tclient) end) -- stored: the token header was sent whole
      end)

      it("a finalizer that empties a CorrelatedEvent's key and def name while its content is decoded #finalizer", function()
        local function put(f, r, o)
          if f == "blocking" then return client:put_correlated_event(r, o) end
          return assert(client:put_correlated_event_async(r, o)):wait(10)
        end
        finalizer_case(function(k)
          local _, key = ids("corr-" .. form .. k)
          local items = nested(3)
          items[#items + 1] = lh.json_arr(big_json("correlated"))
          local r = { key = fresh(key), external_event_def_name = fresh(CORRELATED_DEF), content = lh.array(items) }
          return r, key, opts(), function()
            empty_nested(items)
            r.key, r.external_event_def_name = nil, nil
            pressure()
            return true
          end
        end, function(key)
          local ce = assert(client:get_correlated_event { key = key, external_event_def_name = CORRELATED_DEF })
          assert.equal(key, ce.id.key)
          local want = nested_reply(3)
          for k = 1, #want do assert.same(want[k], ce.content.value[k]) end
        end, put)
      end)

      it("a finalizer that empties a def's name and content type while a default value is decoded #finalizer", function()
        local function put(f, r, o)
          if f == "blocking" then return client:put_external_event_def(r, o) end
          return assert(client:put_external_event_def_async(r, o)):wait(10)
        end
        finalizer_case(function(k)
          local name = ("typed-%s-%d"):format(form, k) .. ("-abcdef"):rep(6)
          local field, struct = text("X", LONG, k), text("n", LONG, k)
          -- the struct name is read before the default value, whose JSON decoding runs the
          -- finalizer: a pointer to it kept unanchored would be read after it was freed
          local fields = {
            [fresh(field)] = { type = fresh("STRUCT"), name = fresh(struct), version = 4,
                               default_value = lh.json_arr(big_json("default")) },
          }
          local r = { name = fresh(name), correlated_event_config = { ttl_seconds = 30 },
                      content_type = { type = fresh("INLINE_STRUCT"), masked = false, fields = fields } }
          return r, { name = name, field = field, struct = struct }, opts(), function()
            for f, t in pairs(fields) do
              t.name, t.type = nil, nil
              fields[f] = nil
            end
            r.name, r.content_type.type, r.content_type = nil, nil, nil
            pressure()
            return true
          end
        end, function(want)
          local def = assert(client:get_external_event_def(want.name))
          assert.equal(want.name, def.id.name)
          local t = def.type_information.fields[want.field]
          assert.is_table(t, "the field is missing")
          assert.same({ "STRUCT", want.struct, 4 }, { t.type, t.name, t.version })
          assert.same({ 1500, "default" }, { #t.default_value, t.default_value[1] })
          assert.same({ ttl_seconds = 30, delete_after_first_correlation = false }, def.correlated_event_config)
        end, put)
      end)

      -- GetExternalEvent and the ExternalEventDef calls convert no content: no Lua code can
      -- run between reading their strings and packing them (these cases cannot fail on a
      -- packer that keeps pointers; they guard the property). A finalizer armed for the whole
      -- call empties the request wherever it runs; what was asked is what is answered.
      it("get_external_event, put/get_external_event_def: what was asked is what is answered", function()
        local client = tclient
        local r, id = request(form, lh.str("x"))
        assert(post(form, r, token_opts()))
        local name = form .. "-def" .. ("-abcdef"):rep(6)
        local calls = {
          function()
            local q = { wf_run_id = fresh(id.wf_run_id), external_event_def_id = { name = fresh(DEF) }, guid = fresh(id.guid) }
            return q, function(o)
              if form == "blocking" then return client:get_external_event(q, o) end
              return client:get_external_event_async(q, o):wait(10)
            end
          end,
          function()
            local q = { name = fresh(name), seconds_after_put = 60 }
            return q, function(o)
              if form == "blocking" then return client:put_external_event_def(q, o) end
              return client:put_external_event_def_async(q, o):wait(10)
            end
          end,
          function()
            local q = { name = fresh(name) }
            return q, function(o)
              o.reply = nil
              if form == "blocking" then return client:get_external_event_def(q, o) end
              return client:get_external_event_def_async(q, o):wait(10)
            end
          end,
        }
        local answers = {}
        for k, make in ipairs(calls) do
          local q, call = make()
          local o = token_opts()
          local _, ok, got, err = with_finalizer(function()
            for key in pairs(q) do q[key] = nil end
            pressure()
            return true
          end, function() return call(o) end)
          assert(ok, k .. ": " .. tostring(got))
          assert(got, k .. ": " .. tostring(err))
          answers[k] = got
        end
        local def = assert(client:get_external_event_def(name, { metadata = { authorization = TOKEN } }))
        assert.equal(name, def.id.name)
        assert.equal(60, def.seconds_after_put)
        assert.equal(name, answers[3].id.name)
      end)
    end)
  end
end)
