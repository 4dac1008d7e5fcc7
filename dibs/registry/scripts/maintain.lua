-- The upkeep each process runs every sweep: ARGS {timeout}.
--   1. Beat: record that this process is alive now.  If it was not listed,
--      Redis lost its data or the others declared it dead, and the caller
--      must register its connections again.
--   2. Reap: clean up after every process whose last beat is older than
--      ``timeout`` seconds.  Only one process's script can find a given
--      dead process, so each is cleaned up exactly once.
--   3. Expire what is due, including what reaping just made due.
local known = redis.call("ZSCORE", P .. "processes", PROCESS)
redis.call("ZADD", P .. "processes", exact(NOW), PROCESS)

local reaped = {}
local dead = redis.call(
  "ZRANGEBYSCORE", P .. "processes", "-inf", exact(NOW - ARGS.timeout),
  "WITHSCORES")
for i = 1, #dead, 2 do
  reaped[#reaped + 1] = {dead[i], reap(dead[i], tonumber(dead[i + 1]))}
end

expire_due(NOW)
return finish({known = known ~= false, reaped = reaped})
