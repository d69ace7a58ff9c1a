"""Example CSMS plugin: fleet cards with a daily session limit (see README.md)."""
