"""device_settings."""
