"""Outbound channels (HTTP webhooks, MQTT). No ORM, no domain: kit and config only."""
