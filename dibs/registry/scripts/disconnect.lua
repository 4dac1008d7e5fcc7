-- Forget a dropped connection; its user stays present for the grace period:
-- ARGS {sid}.
local connection = load_connection(ARGS.sid)
if connection == nil then
  return finish(nil)
end

if connection.page then
  detach(ARGS.sid, connection, NOW, true)
end
forget_connection(ARGS.sid, connection)
return finish(nil)
