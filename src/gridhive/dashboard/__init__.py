"""The dashboard of utilities and device makers, signed in with an API key."""
