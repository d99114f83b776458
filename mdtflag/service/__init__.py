"""The HTTP service: CDS Hooks 2.0, the REST API and their authentication."""
