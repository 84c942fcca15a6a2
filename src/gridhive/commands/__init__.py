"""Per-device commands: the last step of an event, delivered to the OEM and acknowledged."""
