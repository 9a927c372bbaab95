"""Settings and URLs of the demo project."""
