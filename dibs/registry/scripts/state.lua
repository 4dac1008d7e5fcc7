-- Change a connection's state on its page: ARGS {sid, state}.
local connection = current_connection()
if connection == nil then
  return refuse("not_visiting")
end

change_state(ARGS.sid, connection, ARGS.state)
save_connection(ARGS.sid, connection)
return finish(nil)
