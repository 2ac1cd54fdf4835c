-- Turns the raw lines of a benchmark run (build/bench/raw.txt from bench/run.sh, or
-- build/bench/instructions.raw from bench/instructions.sh) into the table, the ratios with their
-- spread, and the target checks.
--   lua5.4 bench/report.lua RAW.txt [RESULTS.txt]
-- Prints to stdout and writes the same text to RESULTS.txt. Sections whose lines are absent
-- (a part skipped with BENCH_SKIP) print as n/a or not at all.
local raw_path, out_path = arg[1], arg[2]
assert(raw_path, "usage: report.lua RAW.txt [RESULTS.txt]")
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local function parse(line)
  local kind, rest = line:match("^(%u+) (.*)$")
  if not kind then return nil end
  local t = { _line = kind, _rest = rest }
  -- values run to the next " key=" (so "reason=no server on the port" stays whole)
  for k, v in (" " .. rest):gmatch(" ([%w_]+)=(.-)%f[ \0]") do t[k] = v end
  return t
end

local function key_of(t) return t.client .. "/" .. (t.payload or "small") .. "/" .. t.mode .. "/" .. t.inflight end

local results, instr, instrfn, nginx, noise, meta, failed, convert = {}, {}, {}, {}, {}, {}, {}, {}
local rss, valgrind, leak
for line in io.lines(raw_path) do
  local t = parse(line)
  if t then
    local kind = t._line
    if kind == "RESULT" then
      local key = key_of(t)
      results[key] = results[key] or {}
      table.insert(results[key], t)
    elseif kind == "INSTR" then
      instr[key_of(t)] = tonumber(t.instr) / tonumber(t.calls)
    elseif kind == "INSTRFN" then
      local key = key_of(t)
      instrfn[key] = instrfn[key] or {}
      instrfn[key][t.fn] = tonumber(t.instr) / tonumber(t.calls)
    elseif kind == "NGINX" then
      nginx[t.kind] = nginx[t.kind] or {}
      table.insert(nginx[t.kind], t)
    elseif kind == "NOISE" then
      noise[#noise + 1] = t
    elseif kind == "META" then
      meta[#meta + 1] = t._rest
    elseif kind == "RSS" then
      rss = t
    elseif kind == "VALGRIND" then
      valgrind = t
    elseif kind == "LEAK" then
      leak = t
    elseif kind == "FAILED" then
      failed[#failed + 1] = line
    elseif kind == "CONVERT" then
      convert[#convert + 1] = t._rest
    end
  end
end

local median, minmax = common.median, common.minmax

-- per-run derived figures, and the medians over runs; byrep[rep] = { rate =, cpu = } per round
local F = {}
local function figures(key)
  if F[key] ~= nil then return F[key] or nil end
  local runs = results[key]
  if not runs then F[key] = false return nil end
  local f = { rate = {}, p50 = {}, p99 = {}, cpu = {}, ccore = {}, score = {}, other = {}, errors = 0, byrep = {} }
  for _, r in ipairs(runs) do
    local calls, secs, cpu, srv = tonumber(r.calls), tonumber(r.secs), tonumber(r.cpu), tonumber(r.srv_cpu)
    local rate = calls / secs
    local cpu_call = calls > 0 and cpu / calls * 1e6 or 0
    table.insert(f.rate, rate)
    table.insert(f.p50, tonumber(r.p50_us))
    table.insert(f.p99, tonumber(r.p99_us))
    table.insert(f.cpu, cpu_call)
    table.insert(f.ccore, cpu / secs * 100)
    if srv >= 0 then table.insert(f.score, srv / secs * 100) end
    local busy = tonumber(r.busy or "")
    if busy then table.insert(f.other, math.max(0, busy - cpu - math.max(srv, 0)) / secs * 100) end
    f.errors = f.errors + tonumber(r.errors)
    f.byrep[r.rep] = { rate = rate, cpu = cpu_call }
  end
  F[key] = {
    rate = median(f.rate), p50 = median(f.p50), p99 = median(f.p99), cpu = median(f.cpu), ccore = median(f.ccore),
    score = median(f.score), other = median(f.other), errors = f.errors, n = #runs, byrep = f.byrep,
  }
  return F[key]
end

local out = {}
local function say(fmt, ...) out[#out + 1] = select("#", ...) > 0 and string.format(fmt, ...) or fmt end
local pass, fail, na_count = 0, 0, 0
local function verdict(ok)
  if ok then pass = pass + 1 else fail = fail + 1 end
  return ok and "PASS" or "FAIL"
end

-- ---------------------------------------------------------------------- the timing table
local C, CD = "C, reply bytes copied, no decode", "C + protobuf-c decode and free"
local groups = {
  { "C baselines, sending the Lua 5.4 process's bytes", {
    { "c/small/seq/1", C }, { "c/small/async/8", C }, { "c/small/async/64", C },
    { "c-decode/small/seq/1", CD }, { "c-decode/small/async/64", CD },
    { "c/real/seq/1", C }, { "c/real/async/64", C }, { "c-decode/real/seq/1", CD }, { "c-decode/real/async/64", CD },
  } },
  { "Lua 5.4 binding, reply as Lua tables", {
    { "lua/small/seq/1", "sync" }, { "lua/small/seq+/1", "sync, async engine running" },
    { "lua/small/async/8", "async" }, { "lua/small/async/64", "async" },
    { "lua/real/seq/1", "sync" }, { "lua/real/async/64", "async" },
    { "lua/realtext/seq/1", "sync" }, { "lua/realtext/async/64", "async" },
  } },
  { "Lua 5.4 binding, reply = false", {
    { "lua-noreply/small/seq/1", "sync" }, { "lua-noreply/small/async/64", "async" },
    { "lua-noreply/real/seq/1", "sync" }, { "lua-noreply/real/async/64", "async" },
    { "lua-noreply/realtext/seq/1", "sync" }, { "lua-noreply/realtext/async/64", "async" },
  } },
  { "LuaJIT (a plain LuaJIT process), and the C baselines sending its bytes", {
    { "c/small-jit/seq/1", C }, { "c/small-jit/async/64", C }, { "c/real-jit/seq/1", C }, { "c/real-jit/async/64", C },
    { "c-decode/real-jit/seq/1", CD }, { "c-decode/real-jit/async/64", CD },
    { "luajit/small/seq/1", "LuaJIT, reply as tables, sync" }, { "luajit/small/async/64", "LuaJIT, reply as tables, async" },
    { "luajit/real/seq/1", "LuaJIT, reply as tables, sync" }, { "luajit/real/async/64", "LuaJIT, reply as tables, async" },
    { "luajit/realtext/seq/1", "LuaJIT, reply as tables, sync" },
    { "luajit/realtext/async/64", "LuaJIT, reply as tables, async" },
    { "luajit-noreply/real/seq/1", "LuaJIT, reply = false, sync" },
    { "luajit-noreply/real/async/64", "LuaJIT, reply = false, async" },
  } },
  { "Other clients (small payload)", {
    { "js/small/seq/1", "JS SDK littlehorse-client 0.14.0" }, { "js/small/async/8", "JS SDK littlehorse-client 0.14.0" },
    { "js/small/async/64", "JS SDK littlehorse-client 0.14.0" },
    { "py/small/seq/1", "Python grpcio, sync stub" }, { "py/small/async/8", "Python grpcio, grpc.aio" },
    { "py/small/async/64", "Python grpcio, grpc.aio" },
  } },
}

local pinned = false
for _, m in ipairs(meta) do if m:find("pin=1", 1, true) then pinned = true end end
local timing = next(results) ~= nil
say("LittleHorse Lua client benchmark: PutExternalEvent, dev server on loopback (--threads 1)%s",
    not timing and "" or pinned and ", client pinned to CPU 0, server to CPU 1" or ", not pinned")
for _, m in ipairs(meta) do say("  %s", m) end
say("  payloads: small = a 3-key JSON object; real = a ~300-byte webhook body (an order: customer object,")
say("  items array of objects, decimals, a 13-digit integer) as a Lua table; realtext = the same request")
say("  bytes with the content given as JSON text (lh.json_obj). Every C row sends byte-identical requests")
say("  to the Lua rows it is compared with (captured from that Lua process in the same round).")

if timing then
  say("")
  local hdr = string.format("%-40s %-9s %6s %9s %8s %8s %8s %7s %7s %7s %4s", "client", "payload", "flight",
    "calls/s", "p50 us", "p99 us", "CPU us", "client%", "server%", "others%", "runs")
  say(hdr)
  say(string.rep("-", #hdr))
  for _, g in ipairs(groups) do
    say(g[1])
    for _, row in ipairs(g[2]) do
      local key, label = row[1], row[2]
      local payload, mode, inflight = key:match("^[^/]+/([^/]+)/([^/]+)/(%d+)$")
      local shown = mode == "seq" and "seq" or mode == "seq+" and "seq+" or inflight
      local f = figures(key)
      if f then
        say("  %-38s %-9s %6s %9.0f %8.0f %8.0f %8.1f %6.0f%% %6.0f%% %7s %4d%s", label, payload, shown, f.rate, f.p50,
            f.p99, f.cpu, f.ccore, f.score or -1, f.other and string.format("%.0f%%", f.other) or "?", f.n,
            f.errors > 0 and ("  ERRORS: " .. f.errors) or "")
      else
        say("  %-38s %-9s %6s %9s   (not measured)", label, payload, shown, "n/a")
      end
    end
  end
  say("")
  say("calls/s, p50, p99, CPU: median of the rounds. CPU us: the client process's CPU (all its threads, user +")
  say("system, getrusage / os.clock) per call. client% / server%: CPU of the client / dev server process as a")
  say("share of one core in the measured window. others%: CPU every other process used meanwhile (2 cores =")
  say("200%): noise. Latency: the whole call as its user sees it (the C rows: start to reply copied/decoded).")
end

-- ---------------------------------------------------------------------- ratios
-- The ratio a/b of `field` in each round where both ran, in round order.
local function round_ratios(a, b, field)
  local fa, fb = figures(a), figures(b)
  if not (fa and fb) then return {} end
  local rs = {}
  for rep, ra in pairs(fa.byrep) do
    local rb = fb.byrep[rep]
    if rb and rb[field] > 0 then rs[#rs + 1] = { tonumber(rep) or 0, ra[field] / rb[field] } end
  end
  table.sort(rs, function(x, y) return x[1] < y[1] end)
  local vals = {}
  for i, r in ipairs(rs) do vals[i] = r[2] end
  return vals
end

-- Paired: the two clients of a round ran minutes apart at most, so the machine's slow drift
-- cancels in each round's ratio; the median resists a round a burst of noise hit. Spread: the
-- min-max of the per-round ratios. With fewer than 3 rounds: the ratio of the medians.
local function ratio_of(a, b, field)
  local per = round_ratios(a, b, field)
  local fa, fb = figures(a), figures(b)
  if not (fa and fb) then return nil end
  if #per >= 3 then
    local lo, hi = minmax(per)
    return median(per), string.format("[%.2f-%.2f]", lo, hi)
  end
  return fa[field] / fb[field], string.format("(%d round%s)", #per, #per == 1 and "" or "s")
end

local LW = 72
-- check(label, a, b, field, op, target): op ">=" (target or better), "<=", or nil (shown only)
local function check(label, a, b, field, op, target)
  local r, spread = ratio_of(a, b, field or "rate")
  if not r then
    if op then na_count = na_count + 1 end
    say("%-" .. LW .. "s %7s  n/a (not measured)", label, op and (op .. " " .. target) or "")
    return
  end
  local v = ""
  if op then v = verdict(op == ">=" and r >= target or op == "<=" and r <= target) end
  say("%-" .. LW .. "s %7s %6.2fx %-13s %s", label, op and (op .. " " .. target) or "", r, spread, v)
end

if timing then
  say("")
  say("Equal work, calls/s (median of the per-round ratios [min-max over rounds])")
  say("  sequential, against the matching C client:")
  for _, p in ipairs { "small", "real", "realtext" } do
    local pc = p == "realtext" and "real" or p
    local op, t = p ~= "realtext" and ">=" or nil, 0.95
    check(string.format("    Lua 5.4 sync, %s, tables / C decoding", p), "lua/" .. p .. "/seq/1", "c-decode/" .. pc .. "/seq/1", "rate", op, t)
    check(string.format("    Lua 5.4 sync, %s, reply = false / C not decoding", p), "lua-noreply/" .. p .. "/seq/1",
          "c/" .. pc .. "/seq/1", "rate", op, t)
  end
  say("  64 in flight, against the matching C client:")
  check("    Lua 5.4 async, real, tables / C decoding", "lua/real/async/64", "c-decode/real/async/64", "rate", ">=", 0.8)
  check("    Lua 5.4 async, small, tables / C decoding", "lua/small/async/64", "c-decode/small/async/64", "rate", ">=", 0.8)
  check("    Lua 5.4 async, small, reply = false / C not decoding", "lua-noreply/small/async/64", "c/small/async/64",
        "rate", ">=", 0.8)
  check("    Lua 5.4 async, real, reply = false / C not decoding", "lua-noreply/real/async/64", "c/real/async/64")
  check("    Lua 5.4 async, realtext, tables / C decoding", "lua/realtext/async/64", "c-decode/real/async/64")
  check("    Lua 5.4 async, realtext, reply = false / C not decoding", "lua-noreply/realtext/async/64", "c/real/async/64")
  check("  Lua 5.4 async 64 in flight / Lua 5.4 sync sequential (small, tables)", "lua/small/async/64", "lua/small/seq/1",
        "rate", ">=", 3)
  local c64, cseq = figures("c/small/async/64"), figures("c/small/seq/1")
  if c64 and cseq then say("    (for scale: C 64 in flight / C sequential = %.2fx in this run)", c64.rate / cseq.rate) end

  say("")
  say("Client CPU per call, Lua / the matching C client (lower is better; median [min-max] over rounds)")
  for _, p in ipairs { "small", "real", "realtext" } do
    local pc = p == "realtext" and "real" or p
    for _, how in ipairs { "seq/1", "async/64" } do
      local h = how == "seq/1" and "sync" or "async 64"
      check(string.format("  Lua 5.4 %s, %s, tables / C decoding", h, p), "lua/" .. p .. "/" .. how, "c-decode/" .. pc .. "/" .. how, "cpu")
      check(string.format("  Lua 5.4 %s, %s, reply = false / C not decoding", h, p), "lua-noreply/" .. p .. "/" .. how,
            "c/" .. pc .. "/" .. how, "cpu")
    end
  end

  if figures("luajit/small/seq/1") or figures("luajit/real/seq/1") then
    say("")
    say("LuaJIT against the C clients sending its bytes: calls/s ratio, then client CPU per call ratio")
    for _, row in ipairs {
      { "small", "seq/1", "c/small-jit" }, { "small", "async/64", "c/small-jit" }, { "real", "seq/1", "c/real-jit" },
      { "real", "async/64", "c/real-jit" }, { "realtext", "seq/1", "c/real-jit" }, { "realtext", "async/64", "c/real-jit" },
    } do
      local p, how, c = row[1], row[2], row[3]
      local h = how == "seq/1" and "sync" or "async 64"
      check(string.format("  LuaJIT %s, %s, tables / C not decoding", h, p), "luajit/" .. p .. "/" .. how, c .. "/" .. how)
    end
    check("  LuaJIT sync, real, tables / C decoding (equal work)", "luajit/real/seq/1", "c-decode/real-jit/seq/1")
    check("  LuaJIT async 64, real, tables / C decoding (equal work)", "luajit/real/async/64", "c-decode/real-jit/async/64")
    check("  LuaJIT sync, real, reply = false / C not decoding (equal work)", "luajit-noreply/real/seq/1", "c/real-jit/seq/1")
    check("  LuaJIT async 64, real, reply = false / C not decoding (equal work)", "luajit-noreply/real/async/64",
          "c/real-jit/async/64")
    check("  CPU per call: LuaJIT async 64, real, tables / C decoding", "luajit/real/async/64", "c-decode/real-jit/async/64", "cpu")
    check("  CPU per call: LuaJIT async 64, real, reply = false / C not decoding", "luajit-noreply/real/async/64",
          "c/real-jit/async/64", "cpu")
    check("  LuaJIT / Lua 5.4, sync, real, tables", "luajit/real/seq/1", "lua/real/seq/1")
    check("  LuaJIT / Lua 5.4, async 64, real, tables", "luajit/real/async/64", "lua/real/async/64")
  end

  say("")
  say("Other clients (small payload, Lua 5.4 with reply tables)")
  check("  Lua sync / JS SDK, 1 in flight", "lua/small/seq/1", "js/small/seq/1", "rate", ">=", 3)
  check("  Lua async / JS SDK, 8 in flight", "lua/small/async/8", "js/small/async/8", "rate", ">=", 3)
  check("  Lua async / JS SDK, 64 in flight", "lua/small/async/64", "js/small/async/64", "rate", ">=", 3)
  check("  Lua sync / grpcio, sequential", "lua/small/seq/1", "py/small/seq/1", "rate", ">=", 1.2)
  check("  Lua async / grpcio, 64 in flight", "lua/small/async/64", "py/small/async/64", "rate", ">=", 2.5)
end

-- ---------------------------------------------------------------------- instructions
if next(instr) then
  say("")
  say("Instructions per call (callgrind; user space, all the client's threads; exact counts, no spread)")
  local hows = {}
  for key in pairs(instr) do
    local mode, inflight = key:match("/([^/]+)/(%d+)$")
    hows[mode == "seq" and "seq/1" or mode .. "/" .. inflight] = true
  end
  for _, how in ipairs { "async/64", "seq/1" } do
    if hows[how] then
      local h = how == "seq/1" and "sequential" or "64 in flight"
      say("  %s:", h)
      for _, row in ipairs {
        { "c/small", C }, { "c-decode/small", CD }, { "c/real", C }, { "c-decode/real", CD },
        { "lua-noreply/small", "Lua 5.4, reply = false" }, { "lua/small", "Lua 5.4, reply as tables" },
        { "lua-noreply/real", "Lua 5.4, reply = false" }, { "lua/real", "Lua 5.4, reply as tables" },
        { "lua-noreply/realtext", "Lua 5.4, reply = false" }, { "lua/realtext", "Lua 5.4, reply as tables" },
      } do
        local v = instr[row[1] .. "/" .. how]
        local payload = row[1]:match("/(.*)$")
        say("    %-40s %-9s %10s", row[2], payload, v and string.format("%.0f", v) or "n/a")
      end
      local function gate(label, a, b, target)
        local va, vb = instr[a .. "/" .. how], instr[b .. "/" .. how]
        if not (va and vb) then
          if target then na_count = na_count + 1 end
          say("%-" .. LW .. "s %7s  n/a", label, target and ("<= " .. target) or "")
          return
        end
        local r = va / vb
        say("%-" .. LW .. "s %7s %6.2fx %-13s %s", label, target and ("<= " .. target) or "", r, "",
            target and verdict(r <= target) or "")
      end
      local gated = how == "async/64"
      gate("    Lua 5.4, small, reply = false / C not decoding", "lua-noreply/small", "c/small", gated and 1.15)
      gate("    Lua 5.4, real, reply = false / C not decoding", "lua-noreply/real", "c/real", gated and 1.15)
      gate("    Lua 5.4, small, tables / C decoding", "lua/small", "c-decode/small", gated and 1.3)
      gate("    Lua 5.4, real, tables / C decoding", "lua/real", "c-decode/real", gated and 1.3)
      gate("    Lua 5.4, realtext, reply = false / C not decoding", "lua-noreply/realtext", "c/real")
      gate("    Lua 5.4, realtext, tables / C decoding", "lua/realtext", "c-decode/real")
      if how == "async/64" and instr["floor/small/build/0"] then
        -- What Lua itself spends, whatever the binding: a bound under the "tables" gates.
        say("    lower bound for reply tables (bench/reply_floor.lua; Lua 5.4's own work, no binding can spend less):")
        for _, payload in ipairs { "small", "real" } do
          local floor = instr["floor/" .. payload .. "/build/0"]
          local fns = instrfn["lua/" .. payload .. "/" .. how] or {}
          local strings, walks = fns.lua_pushlstring, fns.lua_next
          local c, cd = instr["c/" .. payload .. "/" .. how], instr["c-decode/" .. payload .. "/" .. how]
          say("      %-66s %-7s %7.0f", "the reply's tables, made by a table constructor (no collection)", payload, floor)
          if strings and walks then
            say("      %-66s %-7s %7.0f", "Lua's lua_pushlstring + lua_next in the \"reply as tables\" calls", payload, strings + walks)
          end
          if c and cd then
            local best = c + floor + (strings or 0) + (walks or 0)
            say("%-" .. LW .. "s %7s %6.2fx", "      best possible, " .. payload .. ": (C not decoding + the above) / C decoding",
                "", best / cd)
          end
        end
      end
    end
  end
end

-- ---------------------------------------------------------------------- nginx
local function by_rep(kind, field)
  local t = {}
  for _, r in ipairs(nginx[kind] or {}) do t[r.rep] = tonumber(r[field]) end
  return t
end
local function errors_of(kind)
  local n = 0
  for _, r in ipairs(nginx[kind] or {}) do n = n + (tonumber(r.non2xx) or 0) + (tonumber(r.errors) or 0) end
  return n
end
local function med_spread(xs)
  local lo, hi = minmax(xs)
  return median(xs), string.format("[%.3f-%.3f]", lo, hi)
end
if next(nginx) then
  say("")
  say("nginx (Debian nginx + lua module, examples/nginx/nginx.conf, LuaJIT build; wrk, one connection)")
  for _, m in ipairs(nginx.meta or {}) do say("  %s", (m._rest:gsub("^kind=meta ", ""))) end
  local h, e, p = by_rep("health", "p50_us"), by_rep("event", "p50_us"), by_rep("plain", "p50_us")
  local hs, es, ps, over = {}, {}, {}, {}
  for rep, hv in pairs(h) do
    if e[rep] and p[rep] then
      hs[#hs + 1], es[#es + 1], ps[#ps + 1] = hv / 1e3, e[rep] / 1e3, p[rep] / 1e3
      over[#over + 1] = (e[rep] - hv - p[rep]) / 1e3
    end
  end
  local errs = errors_of("event") + errors_of("health")
  if #over > 0 then
    say("  fast dev server, median [min-max] over %d rounds, ms:", #over)
    say("    GET /health p50 %.3f %s; POST /event p50 %.3f %s; plain LuaJIT process, the handler's", median(hs),
        select(2, med_spread(hs)), median(es), select(2, med_spread(es)))
    say("    code, sequential p50 %.3f %s", median(ps), select(2, med_spread(ps)))
    local v, spread = med_spread(over)
    say("%-" .. LW .. "s %7s %6.3f ms %-10s %s%s", "  (/event p50 - /health p50) - plain Lua p50, per round", "<= 0.05",
        v, spread, verdict(v <= 0.05 and errs == 0), errs > 0 and ("  ERRORS: " .. errs) or "")
  else
    na_count = na_count + 1
    say("%-" .. LW .. "s %7s  n/a", "  (/event p50 - /health p50) - plain Lua p50", "<= 0.05")
  end
  local sh = {}
  for _, v in pairs(by_rep("slow-health", "p99_us")) do sh[#sh + 1] = v / 1e3 end
  local load_errs = errors_of("slow-load") + errors_of("slow-health")
  if #sh > 0 then
    local rates = {}
    for _, r in ipairs(nginx["slow-load"] or {}) do rates[#rates + 1] = tonumber(r.requests) / tonumber(r.secs) end
    say("  dev server answering after 200 ms, 200 POST /event in flight (wrk -c200: %.0f posts/s, ideal 1000):",
        median(rates) or 0)
    local v, spread = med_spread(sh)
    say("%-" .. LW .. "s %7s %6.3f ms %-10s %s%s", "    GET /health p99 meanwhile (median of the rounds)", "< 5", v, spread,
        verdict(v < 5 and load_errs == 0), load_errs > 0 and ("  ERRORS: " .. load_errs) or "")
  else
    na_count = na_count + 1
    say("%-" .. LW .. "s %7s  n/a", "  /health p99, 200 posts in flight, slow server", "< 5")
  end
  -- durable webhooks (examples/nginx/outbox.conf, LittleHorse down) against /health and one process
  local function rates(kind, count)
    local t = {}
    for _, r in ipairs(nginx[kind] or {}) do t[r.rep] = tonumber(r[count]) / tonumber(r.secs) end
    return t
  end
  local wh, hh, pl = rates("outbox-webhook", "requests"), rates("outbox-health", "requests"), rates("outbox-plain", "posts")
  local whs, hhs, pls, per_health, per_plain = {}, {}, {}, {}, {}
  for rep, w in pairs(wh) do
    if hh[rep] and pl[rep] then
      whs[#whs + 1], hhs[#hhs + 1], pls[#pls + 1] = w, hh[rep], pl[rep]
      per_health[#per_health + 1], per_plain[#per_plain + 1] = w / hh[rep], w / pl[rep]
    end
  end
  if #whs > 0 then
    local check = (nginx["outbox-check"] or {})[1]
    local plain_errs = 0
    for _, r in ipairs(nginx["outbox-plain"] or {}) do plain_errs = plain_errs + tonumber(r.errors) end
    local errs = errors_of("outbox-webhook") + errors_of("outbox-health") + plain_errs
    local function rate_row(label, xs)
      local lo, hi = minmax(xs)
      say("    %-58s %9.0f/s [%.0f-%.0f]", label, median(xs), lo, hi)
    end
    local function ratio_row(label, xs)
      local lo, hi = minmax(xs)
      say("    %-58s %9.2fx  [%.2f-%.2f]", label, median(xs), lo, hi)
    end
    say("  durable webhooks, examples/nginx/outbox.conf (2 workers, one file, fsync on), LittleHorse down,")
    say("  %s in flight; median [min-max] over %d rounds:", check and check.conns or "?", #whs)
    rate_row("POST /webhook: 202 once the record is fsync'd", whs)
    local p50s, p99s = {}, {}
    for _, r in ipairs(nginx["outbox-webhook"] or {}) do
      p50s[#p50s + 1], p99s[#p99s + 1] = tonumber(r.p50_us) / 1e3, tonumber(r.p99_us) / 1e3
    end
    local l50, h50 = minmax(p50s)
    local l99, h99 = minmax(p99s)
    say("      its latency (wrk, per webhook): p50 %.1f ms [%.1f-%.1f], p99 %.1f ms [%.1f-%.1f]", median(p50s), l50, h50,
        median(p99s), l99, h99)
    rate_row("GET /health, the same nginx and connections", hhs)
    rate_row("one LuaJIT process: decode + post_async, as many queued", pls)
    ratio_row("webhooks / one process (per round)", per_plain)
    ratio_row("webhooks / /health (per round)", per_health)
    if errs > 0 then say("    ERRORS: %d (non-2xx answers, broken connections, failed posts)", errs) end
    if check then
      local acc, ans = tonumber(check.accepted), tonumber(check.answered)
      say("%-" .. LW .. "s %7s %6d >= %d %s", "    every 202 a stored record: outbox accepted >= webhooks answered", "",
          acc, ans, verdict(acc >= ans and errs == 0))
    end
  end
  -- bench/nginx/outbox_health.sh: the outbox example under webhook load, LittleHorse down
  local oh, oc = by_rep("ob-health", "p99_us"), by_rep("ob-control", "p99_us")
  local ohs, ocs, diff = {}, {}, {}
  for rep, v in pairs(oh) do
    if oc[rep] then
      ohs[#ohs + 1], ocs[#ocs + 1], diff[#diff + 1] = v / 1e3, oc[rep] / 1e3, (v - oc[rep]) / 1e3
    end
  end
  local ob_errs = errors_of("ob-load") + errors_of("ob-health") + errors_of("ob-control")
  local ob_meta = (nginx["ob-meta"] or {})[1]
  if #ohs > 0 then
    local rates = {}
    for _, r in ipairs(nginx["ob-load"] or {}) do rates[#rates + 1] = tonumber(r.requests) / tonumber(r.secs) end
    say("  examples/nginx/outbox.conf (2 workers), LittleHorse %s, %s POST /webhook in flight (each answered once durable:",
        ob_meta and ob_meta.server or "down", ob_meta and ob_meta.conns or "?")
    say("    %.0f webhooks/s), median [min-max] over %d rounds; control = the same nginx, no load, same round:",
        median(rates) or 0, #ohs)
    local v, spread = med_spread(ohs)
    say("%-" .. LW .. "s %7s %6.3f ms %-10s %s%s", "    GET /health p99 meanwhile (median of the rounds)", "< 5", v, spread,
        verdict(v < 5 and ob_errs == 0), ob_errs > 0 and ("  ERRORS: " .. ob_errs) or "")
    local cv, cspread = med_spread(ocs)
    local dv, dspread = med_spread(diff)
    say("    control /health p99 %.3f ms %s; loaded minus control, per round, %.3f ms %s", cv, cspread, dv, dspread)
    if nginx["ob-log"] then say("  outbox nginx error.log has [error]/[alert]/[crit]/[emerg] lines: see build/bench/nginx-outbox/nginx/logs") end
  else
    na_count = na_count + 1
    say("%-" .. LW .. "s %7s  n/a%s", "  /health p99, outbox example, webhooks in flight, LittleHorse down", "< 5",
        nginx["ob-failed"] and " (bench/nginx/outbox_health.sh failed)" or "")
  end
  if nginx.log then say("  nginx error.log has [error]/[alert]/[crit]/[emerg] lines: see build/bench/nginx/*/logs") end
end

-- ---------------------------------------------------------------------- memory, conversion
if timing or rss or valgrind then
  say("")
  if rss then
    local growth = tonumber(rss.growth_kib)
    say("%-" .. LW .. "s %7s %6d KiB %s", string.format("RSS growth over %s Lua calls (%s)", rss.calls, rss.kind), "< 2 MiB",
        growth, verdict(growth < 2048))
    say("    RSS KiB: at start %s, after warm-up %s, after the calls %s (%.0f s); samples calls:KiB %s",
        rss.start_kib, rss.before_kib, rss.after_kib, tonumber(rss.secs), rss.samples)
  else
    na_count = na_count + 1
    say("%-" .. LW .. "s %7s  n/a (not run)", "RSS growth over the Lua calls", "< 2 MiB")
  end
  if valgrind then
    local ok = tonumber(valgrind.definite) == 0 and tonumber(valgrind.rc) == 0 and leak ~= nil
    say("%-" .. LW .. "s %7s %6d B   %s", string.format("valgrind, %s calls (%s): definitely lost",
        leak and leak.calls or "?", leak and leak.kind or "client did not finish"), "0", tonumber(valgrind.definite),
        verdict(ok))
    say("    indirectly lost %d B, possibly lost %d B (suppressed: valgrind.supp), errors %d, exit %s",
        tonumber(valgrind.indirect), tonumber(valgrind.possible), tonumber(valgrind.errors), valgrind.rc)
  else
    na_count = na_count + 1
    say("%-" .. LW .. "s %7s  n/a (not run)", "valgrind: definitely lost", "0")
  end
end
if #convert > 0 then
  say("")
  say("Conversion alone (bench/convert.lua)")
  for _, line in ipairs(convert) do
    say("  %s", line)
    local v = line:match("ratio [%d.]+%s+(%u+)$")
    if v == "PASS" then pass = pass + 1 elseif v == "FAIL" then fail = fail + 1 end
  end
end

-- ---------------------------------------------------------------------- noise
local other_pct
if #noise > 0 then
  local other, wall = 0, 0
  for _, n in ipairs(noise) do
    other = other + math.max(0, tonumber(n.busy) - tonumber(n.client_cpu) - tonumber(n.server_cpu))
    wall = wall + tonumber(n.wall)
  end
  other_pct = other / wall * 100
end
local c64 = figures("c/small/async/64")
if c64 and c64.score then
  say("")
  say("Server check (C client, small, 64 in flight): client %.0f%% of a core, dev server %.0f%% (1 worker thread).",
      c64.ccore, c64.score)
  if c64.score >= 90 then
    say("  The server was near a full core: it may be what limits the 64-in-flight figures.")
  elseif c64.ccore >= 90 then
    say("  The client saturates its core and the server does not: the server is not the bottleneck.")
  else
    say("  Neither process used a full core: the server is not the bottleneck; the rest is wake-up latency")
    say("  and, on this 2-core machine, the other processes' load below.")
  end
end
if other_pct then
  say("Machine noise: processes other than the client and the dev server used %.0f%% of one core on", other_pct)
  say("  average while the clients ran (2 cores in all).")
end
for _, f in ipairs(failed) do say("FAILED RUN: %s", f) end
say("")
say("targets: %d PASS, %d FAIL, %d n/a", pass, fail, na_count)

local text = table.concat(out, "\n") .. "\n"
io.write(text)
if out_path then
  local f = assert(io.open(out_path, "w"))
  f:write(text)
  f:close()
end
