"""`Idempotency-Key` on POSTs: a retry with the same key and body gets the first answer."""
