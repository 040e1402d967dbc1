"""modelyard.evaluate."""
