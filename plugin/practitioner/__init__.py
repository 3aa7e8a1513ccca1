"""The practitioner journey: the form page, PDF download, upload endpoint and `sharewise links`."""
