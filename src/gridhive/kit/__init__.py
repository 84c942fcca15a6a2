"""Domain-free helpers shared by every layer."""
