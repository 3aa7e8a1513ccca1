"""The read-only overview for managers and admins: ``/admin``."""
