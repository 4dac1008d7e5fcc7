-- Release a claim whoever holds it: ARGS {page, action}.
local page = load_page(ARGS.page)
local held = page.claims[ARGS.action]
if held == nil then
  return refuse("not_claimed")
end

page.claims[ARGS.action] = nil
unschedule_claim(ARGS.page, held)
touch(ARGS.page, true)
return finish(public_claim(held))
