-- Count connections, pages, viewers and claims: ARGS {}.
local keys = redis.call("SMEMBERS", P .. "pages")
local viewers, claims = 0, 0
for _, key in ipairs(keys) do
  viewers = viewers + redis.call("HLEN", P .. "viewers:" .. key)
  claims = claims + redis.call("HLEN", P .. "claims:" .. key)
end
return cjson.encode({result = {
  connections = redis.call("SCARD", P .. "connections"),
  pages = #keys,
  viewers = viewers,
  claims = claims,
}})
