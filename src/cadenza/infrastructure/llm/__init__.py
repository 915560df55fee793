"""Model providers (DESIGN §6): OpenAI-compatible and Anthropic through their official SDKs
(``openai_compatible``, ``anthropic``, their shared client in ``sdk``), the deterministic
``offline`` provider, and the resilience wrapper (``resilient``).

Nothing is imported here: ``offline`` and ``resilient`` must not pull in an SDK, which is
imported only when a provider of its kind is configured (``cadenza.bootstrap.ai``).
"""
