"""Tenants (utilities, OEMs, the platform operator), API keys and access tokens."""
