-- Forget a dropped connection; its user stays present for the grace period:
-- ARGS {sid}.
drop(ARGS.sid, NOW)
return finish(nil)
