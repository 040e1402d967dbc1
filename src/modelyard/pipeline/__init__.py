"""modelyard.pipeline."""
