"""modelyard.delivery."""
