-- defer(fn): run fn when the current test ends, pass or fail. busted keeps a single `finally`
-- per test (a second call replaces the first), so cleanups are collected here and all run,
-- last first, even when one of them fails. busted's `finally` exists only in the spec file's
-- environment, so the spec hands it over:
--   local defer = require "cleanup" (function(f) finally(f) end)
return function(register_finally)
  local cleanups
  return function(fn)
    if not cleanups then
      cleanups = {}
      register_finally(function()
        local list, first_err = cleanups, nil
        cleanups = nil
        for i = #list, 1, -1 do
          local ok, err = pcall(list[i])
          if not ok and not first_err then first_err = err end
        end
        if first_err then error(first_err, 0) end
      end)
    end
    cleanups[#cleanups + 1] = fn
  end
end
