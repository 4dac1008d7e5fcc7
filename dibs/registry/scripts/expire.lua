-- End every presence and claim whose grace or lifetime ran out: ARGS {}.
expire_due(NOW)
return finish(nil)
