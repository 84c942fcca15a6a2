"""The hosted homeowner portal, opened from a single-use session link (flip-api §7.3)."""
