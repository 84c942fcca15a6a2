"""A device maker's cloud with simulated batteries (`gridhive simulate`).

It reaches gridhive only as an OEM would: over HTTP with an OEM key, through webhooks, MQTT or
polling. It never imports the ORM or a domain package (import-linter enforces it), so what it
exercises is the public API and nothing else.
"""
