-- Read one page, or every page when ARGS.page is absent: ARGS {page?}.
if ARGS.page then
  return cjson.encode({result = view(ARGS.page)})
end

local keys = redis.call("SMEMBERS", P .. "pages")
table.sort(keys)
local views = {}
for _, key in ipairs(keys) do
  views[#views + 1] = view(key)
end
return cjson.encode({result = views})
