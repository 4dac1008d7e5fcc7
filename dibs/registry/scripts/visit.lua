-- Put a connection on a page, moving it off any other:
-- ARGS {sid, page, state, href?, user, name}.  The connection is recorded
-- afresh if Redis lost it, since its process still serves it.
local connection = load_connection(ARGS.sid)
    or {user = ARGS.user, name = ARGS.name, state = "viewing", process = PROCESS}

if connection.page == ARGS.page
    and connection.href == ARGS.href
    and connection.user == ARGS.user
    and connection.name == ARGS.name then
  change_state(ARGS.sid, connection, ARGS.state)
else
  if connection.page then
    detach(ARGS.sid, connection, NOW, false)
  end
  connection.user = ARGS.user
  connection.name = ARGS.name
  attach(ARGS.sid, connection, ARGS.page, ARGS.state, ARGS.href)
end

connection.process = PROCESS
save_connection(ARGS.sid, connection)
return finish(nil)
