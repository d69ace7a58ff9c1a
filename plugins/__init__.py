"""Plugins shipped with the CSMS; each is its own package registered in the ``csms`` entry-point group."""
