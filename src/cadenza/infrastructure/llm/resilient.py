"""Any ``ModelProvider`` behind timeout, retry with backoff (honouring Retry-After) and a
circuit breaker (DESIGN §6). The wrapped SDK clients run with ``max_retries=0``, so this is
the only retry policy and the breaker sees every failed attempt.
"""

from __future__ import annotations

from cadenza.application.ports_ai import (
    ChatRequest,
    ChatResponse,
    ModelProvider,
    ProviderError,
    TokenSink,
)
from cadenza.infrastructure.observability.tracing import client_span
from cadenza.infrastructure.resilience import Breaker, CircuitOpenError, call_with_resilience

LIST_MODELS_TIMEOUT_S = 10.0


def _provider_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


def _retry_after(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, ProviderError) else None


def _as_provider_error(name: str, exc: Exception, timeout_s: float) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, CircuitOpenError):
        # Retryable for the engine (it reschedules the task), never inside this call.
        return ProviderError(str(exc), retryable=True, retry_after=exc.retry_after)
    if isinstance(exc, TimeoutError):
        return ProviderError(f"{name}: no answer within {timeout_s:g}s", retryable=True)
    return ProviderError(f"{name}: {type(exc).__name__}: {exc}", retryable=False)


class ResilientProvider:
    """Wraps ``inner``: per-attempt timeout (the request's ``timeout_s``), ``attempts`` tries
    with exponential backoff from ``initial_s``, and ``breaker`` (one per provider name).

    A streamed turn that already delivered tokens is not retried: a second attempt would send
    the sink the answer twice. Every failure surfaces as ProviderError.
    """

    def __init__(
        self,
        inner: ModelProvider,
        breaker: Breaker | None,
        *,
        attempts: int = 3,
        initial_s: float = 0.1,
        max_s: float = 10.0,
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.breaker = breaker
        self.attempts = attempts
        self.initial_s = initial_s
        self.max_s = max_s

    async def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        """One model turn with the resilience policy. Raises ProviderError."""
        streamed = False

        def sink(token: str) -> None:
            nonlocal streamed
            streamed = True
            assert on_token is not None
            on_token(token)

        def retryable(exc: BaseException) -> bool:
            return not streamed and _provider_retryable(exc)

        async def attempt() -> ChatResponse:
            return await self.inner.chat(request, sink if on_token is not None else None)

        span = {"cadenza.provider": self.name, "gen_ai.request.model": request.model}
        try:
            with client_span("llm.chat", span):  # its attempts' HTTP requests carry the trace
                return await call_with_resilience(
                    attempt,
                    name=self.name,
                    breaker=self.breaker,
                    is_retryable=retryable,
                    is_failure=_provider_retryable,
                    retry_after=_retry_after,
                    timeout_s=request.timeout_s,
                    attempts=self.attempts,
                    initial_s=self.initial_s,
                    max_s=self.max_s,
                )
        except Exception as exc:
            raise _as_provider_error(self.name, exc, request.timeout_s) from exc

    async def list_models(self) -> list[str]:
        """The inner provider's model list with the resilience policy. Raises ProviderError."""
        try:
            return await call_with_resilience(
                self.inner.list_models,
                name=self.name,
                breaker=self.breaker,
                is_retryable=_provider_retryable,
                retry_after=_retry_after,
                timeout_s=LIST_MODELS_TIMEOUT_S,
                attempts=self.attempts,
                initial_s=self.initial_s,
                max_s=self.max_s,
            )
        except Exception as exc:
            raise _as_provider_error(self.name, exc, LIST_MODELS_TIMEOUT_S) from exc

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.inner.aclose()
