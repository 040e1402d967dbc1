"""modelyard.packaging."""
