"""The outbox mechanics every domain shares: leases and retry schedules."""
