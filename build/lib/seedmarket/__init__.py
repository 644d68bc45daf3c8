"""seedmarket's command-line entry point; the parts live in `tracker`, `client` and `backend`."""
