-- Claim an action on the connection's page for its user: ARGS {sid, action}.
-- Redis runs this script alone, so of many concurrent claimers exactly one
-- finds the action free.
local connection = current_connection()
if connection == nil then
  return refuse("not_visiting")
end

local key = connection.page
local page = load_page(key)
local held = page.claims[ARGS.action]
if held then
  if held.user == connection.user then
    return finish(public_claim(held))
  end
  return refuse("taken", {claim = public_claim(held)})
end

local count = 0
for _, claim in pairs(page.claims) do
  if claim.user == connection.user then
    count = count + 1
  end
end
if count >= MAX_CLAIMS then
  return refuse("too_many_claims")
end

-- The fencing token follows the clock in microseconds as well as the
-- counter, so it keeps increasing when Redis restarts without its data.
-- Both clocks count: the caller's, and Redis's own, which every process
-- shares, so one process with a slow clock cannot pull tokens back.
local last = tonumber(redis.call("GET", P .. "token") or "0")
local token = string.format(
  "%.0f", math.max(last + 1, math.floor(NOW * 1000000), server_micros()))
redis.call("SET", P .. "token", token)

local claim = {
  action = ARGS.action,
  user = connection.user,
  name = connection.name,
  since = millis(NOW),
  token = token,
  expires_at = NOW + CLAIM_TTL,
}
page.claims[ARGS.action] = claim
schedule(claim.expires_at, "lifetime", key, ARGS.action, token)
touch(key, true)
return finish(public_claim(claim))
