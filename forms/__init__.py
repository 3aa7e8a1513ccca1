"""The decision record form: field spec, template, prefill, read-back, validation, final PDF.

A library the web service calls; it knows nothing of Flask, the database or Celery.
"""
