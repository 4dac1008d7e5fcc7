-- Release the user's claim on an action of the connection's page:
-- ARGS {sid, action}.
local connection = current_connection()
if connection == nil then
  return refuse("not_visiting")
end

local page = load_page(connection.page)
local held = page.claims[ARGS.action]
if held == nil or held.user ~= connection.user then
  return refuse("not_holder")
end

page.claims[ARGS.action] = nil
unschedule_claim(connection.page, held)
touch(connection.page, true)
return finish(nil)
