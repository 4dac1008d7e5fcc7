-- The upkeep each process runs every sweep: ARGS {timeout}.
--   1. Beat: record that this process is alive now.  If it was not listed,
--      Redis lost its data or the others declared it dead, and the caller
--      must register its connections again.
--   2. Reap: clean up after every process whose last beat is older than
--      ``timeout`` seconds (by Redis's clock).  Only one process's script can find a given
--      dead process, so each is cleaned up exactly once.
--   3. Expire what is due, including what reaping just made due.
local known = redis.call("ZSCORE", P .. "processes", PROCESS)
local clock = beat()

local reaped = {}
local dead = redis.call(
  "ZRANGEBYSCORE", P .. "processes", "-inf", exact(clock - ARGS.timeout),
  "WITHSCORES")
for i = 1, #dead, 2 do
  -- How long ago it beat, by Redis's clock, is when on the caller's.
  local last_beat = NOW - (clock - tonumber(dead[i + 1]))
  reaped[#reaped + 1] = {dead[i], reap(dead[i], last_beat)}
end

expire_due(NOW)
return finish({known = known ~= false, reaped = reaped})
