-- Take a connection off its page; its user's presence ends at once: ARGS {sid}.
local connection = current_connection()
if connection == nil then
  return finish(nil)
end

detach(ARGS.sid, connection, NOW, false)
save_connection(ARGS.sid, connection)
return finish(nil)
