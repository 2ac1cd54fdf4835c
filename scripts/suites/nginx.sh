# Sourced by scripts/test.sh: the OpenResty integration test (spec/nginx/nginx_test.lua) with
# Debian's nginx + lua module started by hand; needs the LuaJIT build of the rock.
sh scripts/deps-extra.sh nginx libnginx-mod-http-lua lua-socket >/dev/null
if sh scripts/build-lua.sh luajit >/dev/null; then
  run_busted nginx --run=nginx
else
  echo "not ok - LuaJIT build for nginx failed" >build/tap/nginx.tap
fi
