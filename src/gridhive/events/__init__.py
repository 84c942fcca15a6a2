"""Demand-response events: validated, planned into commands, and run through their lifecycle."""
