-- nest(n): n tables, each the only element of the previous one (deep-nesting specs).
return function(n)
  local t = {}
  local c = t
  for _ = 2, n do
    local x = {}
    c[1] = x
    c = x
  end
  return t
end
