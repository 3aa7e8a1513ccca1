"""Records: the decision records, their append-only audit trail and the webhook events received."""
