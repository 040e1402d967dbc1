"""modelyard.data."""
