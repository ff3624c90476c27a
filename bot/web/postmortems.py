"""GET /postmortems/<n>: the latest draft as an HTML page for reviewers."""
