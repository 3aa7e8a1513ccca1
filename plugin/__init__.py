"""The Flask service a host case system calls: webhooks, records, practitioner pages, CLI."""
