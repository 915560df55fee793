"""Adapters that implement the application ports: storage, HTTP, templating."""
