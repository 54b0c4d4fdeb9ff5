"""optimizations."""
