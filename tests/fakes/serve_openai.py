"""Run the fake OpenAI-compatible server on its own: ``python -m tests.fakes.serve_openai``.

Prints ``PORT <n>`` on stdout once listening and serves until SIGTERM/SIGINT. Used by the W3
benchmark so the fake model's CPU time is not counted in the engine's process.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from tests.fakes.openai_server import FakeOpenAIServer


async def serve(delay_s: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeOpenAIServer(delay_s=delay_s) as server:
        print(f"PORT {server.port}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per answer")
    asyncio.run(serve(parser.parse_args().delay))


if __name__ == "__main__":
    main()
