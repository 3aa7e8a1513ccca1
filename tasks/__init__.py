"""Celery application and background tasks: reminders, delivery to the host, sweeps."""
