"""Billing plugin: tariffs, pricing, settlement, statements."""
