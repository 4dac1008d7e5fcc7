-- Remember a new connection of this process: ARGS {sid, user, name}.
save_connection(ARGS.sid, {
  user = ARGS.user,
  name = ARGS.name,
  state = "viewing",
  process = PROCESS,
})
return finish(nil)
