-- A process that stops cleanly drops its connections at once, with the
-- usual grace, rather than waiting to be declared dead: ARGS {}.
for _, sid in ipairs(redis.call("SMEMBERS", P .. "process:" .. PROCESS)) do
  drop(sid, NOW)
end
redis.call("DEL", P .. "process:" .. PROCESS)
redis.call("ZREM", P .. "processes", PROCESS)
return finish(nil)
