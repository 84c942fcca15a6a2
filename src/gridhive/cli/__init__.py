"""The `gridhive` command."""
