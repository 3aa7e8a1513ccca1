"""Inbound webhooks from host systems: ``POST /webhooks/<tenant>``."""
