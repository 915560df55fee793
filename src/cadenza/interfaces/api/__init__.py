"""The HTTP API: ``create_app`` builds it from application services (nothing at import)."""

from cadenza.interfaces.api.app import create_app
from cadenza.interfaces.api.services import ApiConfig, ApiServices

__all__ = ["ApiConfig", "ApiServices", "create_app"]
