"""The outbox: post-backs to the host written as rows in the caller's transaction, then sent.

``schedule`` holds the pure retry schedule, ``client`` the signed HTTP client, ``hostsim`` the
reference host used by the tests and ``sharewise demo``; the models, services and CLI hang off
the service skeleton.
"""
