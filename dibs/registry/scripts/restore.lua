-- Register this process and its connections again, after Redis was
-- unreachable or lost its data: ARGS {live = [connection], gone = [sid]}.
-- A live connection is {sid, user, name, state, page?, href?}, as this
-- process remembers it; gone ones dropped while Redis was unreachable.
-- Every page a live connection is on is reported, so that it gets a fresh
-- snapshot even where nothing changed: emits made during the outage were
-- lost.
beat()

for _, sid in ipairs(ARGS.gone) do
  drop(sid, NOW)
end

for _, wanted in ipairs(ARGS.live) do
  local sid = wanted.sid
  local connection = load_connection(sid)
  local same = connection
      and connection.user == wanted.user
      and connection.name == wanted.name
      and connection.page == wanted.page
      and connection.href == wanted.href
      and connection.state == wanted.state
  if not same then
    if connection and connection.page then
      detach(sid, connection, NOW, false)
    end
    connection = {user = wanted.user, name = wanted.name, state = wanted.state}
    if wanted.page then
      attach(sid, connection, wanted.page, wanted.state, wanted.href)
    end
  end
  connection.process = PROCESS
  save_connection(sid, connection)
  if wanted.page then
    changed[wanted.page] = true
  end
end

return finish(nil)
