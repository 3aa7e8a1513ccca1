"""Reminders and escalation: step policy, reminder rows, the scan, the daily digest, email text."""
