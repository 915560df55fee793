"""A provider's configuration changes at run time: its cached client is replaced."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.engine_harness import doc, engine_on, run

from cadenza.application.providers import ProviderChanged
from cadenza.bootstrap import reconfigure_provider
from cadenza.settings import ProviderSettings


async def test_reconfigured_provider_sends_new_calls_to_the_new_endpoint(tmp_path: Path) -> None:
    d = doc([{"id": "say", "type": "llm", "config": {"prompt": "hi", "provider": "main"}}])
    changes: list[ProviderChanged] = []
    async with FakeOpenAIServer() as first, FakeOpenAIServer() as second:
        settings = ProviderSettings(name="main", base_url=first.base_url, default_model="m")
        async with engine_on(f"sqlite:///{tmp_path}/c.db", providers=[settings]) as rt:
            rt.providers.listeners.append(changes.append)
            assert (await run(rt, d)).status.value == "completed"
            moved = settings.model_copy(update={"base_url": second.base_url})
            await reconfigure_provider(rt.providers, moved)
            assert (await run(rt, d)).status.value == "completed"
            assert len(rt.providers.retired) == 1  # closed after the grace period or at close
    assert changes == [ProviderChanged("main")]
    assert len([r for r in first.requests if r.path.endswith("/completions")]) == 1
    assert len([r for r in second.requests if r.path.endswith("/completions")]) == 1
