"""Load balancing plugin."""
