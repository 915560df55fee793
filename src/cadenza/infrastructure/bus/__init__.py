"""Event bus adapters (``cadenza.application.ports_bus.EventBus``)."""
