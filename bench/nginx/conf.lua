-- Writes an nginx.conf from a template with ${NAME} placeholders (examples/nginx/nginx.conf, the
-- one spec/nginx/nginx_test.lua runs): unknown names stay as they are. When run as root, adds a
-- `user` directive so that the worker runs as the invoking user, not nobody, and can read the
-- module and Lua files in a private checkout.
--   lua5.4 bench/nginx/conf.lua TEMPLATE OUT NAME=VALUE...
local template, out = arg[1], arg[2]
local vars = {}
for i = 3, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  vars[assert(k, "NAME=VALUE expected: " .. arg[i])] = v
end
local f = assert(io.open(template, "rb"))
local conf = f:read("a")
f:close()
conf = conf:gsub("%${([%w_]+)}", function(k) return vars[k] end)
local function sh(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("l")
  p:close()
  return s
end
if sh("id -u") == "0" then
  conf = string.format("user %s %s;\n", sh("id -un"), sh("id -gn")) .. conf
end
f = assert(io.open(out, "wb"))
f:write(conf)
f:close()
