-- littlehorse.pages: iterators over the pages of list and search calls (docs/api.md,
-- "Iterators"). Not a module of its own API: the client's external_events,
-- external_event_ids, correlated_event_ids and external_event_def_ids return these.
--
-- An iterator is a callable object for the generic `for`: each call returns the next result,
-- fetching the next page (one call of the single-page method, with the bookmark of the page
-- before) only when the results in hand are used up, and nil after the last page. A page that
-- fails raises its error object (`pcall` gets it: err.code, err.message, ...); the iterator's
-- `bookmark` then names the page to fetch again, so a new iterator given that bookmark resumes
-- where this one stopped. Runs on Lua 5.1, LuaJIT and 5.2-5.4.
local core = require "littlehorse.core"

local M = {}

local Pages = {}
local Pages_mt = { __index = Pages, __name = "littlehorse.pages" }

-- fetch(request, opts) -> page | nil, err, code: one call of a single-page method.
-- request: the request of the first page (its bookmark, if any, is where to start).
-- rpc: the RPC's name, for the error of a server that does not move on.
function M.new(fetch, request, opts, rpc)
  return setmetatable({ _fetch = fetch, _request = request, _opts = opts, _rpc = rpc, _items = {}, _next = 1,
                        bookmark = request.bookmark, pages = 0, done = false }, Pages_mt)
end

-- The next page into self._items; false at the end.
local function next_page(self)
  while not self.done do
    local sent = self.bookmark
    self._request.bookmark = sent
    local page, err = self._fetch(self._request, self._opts)
    if not page then error(err, 0) end
    self.pages = self.pages + 1
    local results = page.results or {}
    if page.bookmark ~= nil and page.bookmark == sent then
      -- The server answered with the bookmark it was sent (as it does, with no results, for a
      -- limit of 0): following it would ask for the same page forever.
      local _, e = core.new_error("INTERNAL", "the server answered a page with the bookmark it was sent; " ..
                                  "stopped instead of asking for the same page forever", self._rpc)
      error(e, 0)
    end
    self.bookmark = page.bookmark
    self.done = page.bookmark == nil
    if #results > 0 then
      self._items, self._next = results, 1
      return true
    end
  end
  return false
end

function Pages:next()
  local i = self._next
  if self._items[i] == nil then
    if not next_page(self) then return nil end
    i = 1
  end
  self._next = i + 1
  return self._items[i]
end

Pages_mt.__call = function(self) return self:next() end
Pages_mt.__tostring = function(self)
  return string.format("littlehorse.pages (%s, %d page%s fetched%s)", self._rpc, self.pages,
                       self.pages == 1 and "" or "s", self.done and ", done" or "")
end

return M
