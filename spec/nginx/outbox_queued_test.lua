-- Posts from nginx phases that cannot wait (log_by_lua) are queued; one that then cannot be
-- stored is reported at [error] with its guid (and key) and counted in stats().queued_lost by
-- the worker that queued it, also when that worker does not deliver (no outbox:start()).
-- CorrelatedEvents are posted from content_by_lua (durable) and log_by_lua (queued) like
-- ExternalEvents, and delivered from the file afterwards.
-- Run by scripts/suites/nginx.sh (busted --run=nginx), after the LuaJIT build of the rock.
local socket = require "socket"
local lh = require "littlehorse"
local devserver = require "devserver"
local files = require "sh"
local host = require "nginx_host"

local q = files.q
local wait_for = host.wait_for
local DEF, CORR_DEF = "webhook-event", "paid"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

-- One worker, an outbox of at most `max_rows` records and no delivery in it (no client, no
-- start()): posts from content_by_lua (/post, /corr) and from log_by_lua (/seen, /seen-corr).
local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
events { worker_connections 64; }
http {
  access_log off;
  lua_package_path "${LUA_PATH};;";
  lua_package_cpath "${LUA_CPATH};;";
  init_by_lua_block { require "littlehorse" }
  init_worker_by_lua_block {
    require("littlehorse.resty").wake_dir = "${WAKE_DIR}"
    package.loaded.ob = require("littlehorse").outbox("${OUTBOX}", { max_rows = ${MAX_ROWS} })
  }
  exit_worker_by_lua_block { require("littlehorse.resty").shutdown() }
  server {
    listen 127.0.0.1:${PORT};
    location = /post {
      content_by_lua_block {
        local id, how = package.loaded.ob:post_event(ngx.var.arg_wf, "webhook-event", 1)
        ngx.status = id and 202 or 503
        ngx.say(tostring(id), " ", tostring(how))
      }
    }
    location = /corr {
      content_by_lua_block {
        local id, how = package.loaded.ob:post_correlated_event(ngx.var.arg_key, "paid", "from content")
        ngx.status = id and 202 or 503
        ngx.say(tostring(id), " ", tostring(how))
      }
    }
    location = /seen {
      return 204;
      log_by_lua_block {
        local id, how = package.loaded.ob:post_event(ngx.var.arg_wf, "webhook-event", 2)
        ngx.log(ngx.NOTICE, "log phase post: ", tostring(id), " ", tostring(how))
      }
    }
    location = /seen-corr {
      return 204;
      log_by_lua_block {
        local id, how = package.loaded.ob:post_correlated_event(ngx.var.arg_key, "paid", "from log")
        ngx.log(ngx.NOTICE, "log phase post: ", tostring(id), " ", tostring(how))
      }
    }
    location = /stats {
      content_by_lua_block {
        local st, err = package.loaded.ob:stats()
        if not st then ngx.status = 503; ngx.say(tostring(err)); return end
        ngx.say("accepted=", st.accepted, " pending=", st.pending, " queued_lost=", tostring(st.queued_lost))
      }
    }
  }
}
]]

local function start_nginx(outbox, max_rows)
  return host.start(CONF, { OUTBOX = outbox, MAX_ROWS = tostring(max_rows) }, { workers = 1 })
end

-- One request on its own connection: status, body.
local function request(port, path)
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(10)
  assert(conn:send(string.format("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)))
  local resp = conn:receive("*a") or ""
  conn:close()
  return tonumber(resp:match("^HTTP/1%.1 (%d+)")), resp:match("\r\n\r\n(.*)$") or ""
end

local function stats(port)
  local status, body = request(port, "/stats")
  assert.equal(200, status, body)
  local t = {}
  for k, v in body:gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
  return t
end

-- The guid (or key) the log phase's post returned, from the notice it logged.
local function log_phase_post(n, id_pattern)
  local id
  assert(wait_for(function()
    id = n.log():match("log phase post: (" .. id_pattern .. ") queued")
    return id ~= nil
  end, 10), "no log phase post in the error log:\n" .. n.log())
  return id
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

describe("nginx: outbox posts queued where nothing can wait", function()
  local obdir
  before_each(function()
    obdir = io.popen("mktemp -d /tmp/lh-nginx-obq-file.XXXXXX"):read("*l")
    assert(sh("chmod 777 " .. q(obdir)))
  end)
  after_each(function() sh("rm -rf " .. q(obdir)) end)

  it("reports a queued post that cannot be stored (full) at [error], with its guid, without start()", function()
    local n = start_nginx(obdir .. "/o.db", 2)
    finally(n.stop)
    assert.equal(202, (request(n.port, "/post?wf=a")))
    assert.equal(202, (request(n.port, "/post?wf=b")))  -- full now
    assert.equal(204, (request(n.port, "/seen?wf=c")))  -- queued in log_by_lua, then refused
    local guid = log_phase_post(n, "%x+")
    assert(wait_for(function()
      return n.log():find("[error]", 1, true) and
             n.log():match("littlehorse: an outbox post made in a phase that cannot wait %(guid " .. guid ..
                           "%) was not stored: [^\n]*is full") ~= nil
    end, 10), "the lost post was not reported:\n" .. n.log())
    local st = stats(n.port)
    assert.same({ 2, 1 }, { st.accepted, st.queued_lost })
  end)

  it("posts CorrelatedEvents from content_by_lua (durable) and log_by_lua (queued); a lost one names its key", function()
    local path = obdir .. "/o.db"
    local n = start_nginx(path, 3)
    local stopped = false
    finally(function() if not stopped then n.stop() end end)
    assert.equal(204, (request(n.port, "/seen-corr?key=from-log")))
    assert.equal("from-log", log_phase_post(n, "[%w-]+"))
    assert(wait_for(function() return stats(n.port).accepted == 1 end, 10), "the queued post was not stored")
    local status, body = request(n.port, "/corr?key=from-content")
    assert.equal(202, status)
    assert.matches("from%-content durable", body)
    assert.equal(202, (request(n.port, "/post?wf=w")))   -- full now
    assert.equal(204, (request(n.port, "/seen-corr?key=lost-key")))
    assert(wait_for(function()
      return n.log():match("an outbox post made in a phase that cannot wait %(key " .. escape("lost-key") ..
                           ", guid %x+%) was not stored: [^\n]*is full") ~= nil
    end, 10), "the lost post was not reported:\n" .. n.log())
    assert.same({ 3, 1 }, { stats(n.port).accepted, stats(n.port).queued_lost })
    n.stop()
    stopped = true

    -- what nginx stored is delivered from the file: both CorrelatedEvents by their keys
    local srv = devserver.start { defs = { DEF } }
    local client = lh.client { host = "127.0.0.1", port = srv.port, timeout = 5, config_file = false }
    finally(function()
      client:close()
      srv:stop()
    end)
    assert(client:put_external_event_def { name = CORR_DEF, correlated_event_config = true })
    local ob = assert(lh.outbox(path, { client = client }))
    local counts = ob:drain(30)
    ob:close()
    assert.same({ 3, 0, 0 }, { counts.delivered, counts.dead, counts.pending })
    assert.equal("from log", assert(client:get_correlated_event { key = "from-log", external_event_def_name = CORR_DEF }).content)
    assert.equal("from content", assert(client:get_correlated_event { key = "from-content",
                                                                       external_event_def_name = CORR_DEF }).content)
    assert.is_nil(client:get_correlated_event { key = "lost-key", external_event_def_name = CORR_DEF })
    assert.same({ 2, 1 }, { srv:stats().correlated, srv:stats().events })
  end)
end)
