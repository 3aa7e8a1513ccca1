"""Upload versions and the completion path (the page, scripts and `share.form_submitted`)."""
