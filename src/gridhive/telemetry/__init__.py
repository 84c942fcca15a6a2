"""Telemetry: ingest at fleet scale, utility reads, event performance and program capacity."""
