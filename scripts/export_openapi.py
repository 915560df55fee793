"""Write the API's OpenAPI schema for the web console's generated client.

Usage: ``python scripts/export_openapi.py`` writes ``ui/openapi.json``; ``--check`` fails when
the file differs from what the app serves (then regenerate it and the UI client:
``python scripts/export_openapi.py && (cd ui && npm run gen:api)``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from cadenza.bootstrap import build, build_app, build_identity
from cadenza.settings import Settings

TARGET = Path(__file__).resolve().parents[1] / "ui" / "openapi.json"


async def render() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/schema.db", token_secret="x" * 32)
        runtime = await build(settings, run_worker=False)
        try:
            app = await build_app(runtime, await build_identity(runtime))
            schema = app.openapi()
        finally:
            await runtime.close()
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = asyncio.run(render())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(
                f"{TARGET} is stale; run scripts/export_openapi.py and `npm run gen:api` in ui/",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
