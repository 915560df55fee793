"""Adapters of ``cadenza.application.ports_cache.SharedCache``."""
