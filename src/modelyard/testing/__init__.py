"""modelyard.testing."""
