"""``cadenza validate`` and ``cadenza run``: a definition file on this host, with the engine in
this process (no server), and the helpers the other local commands share (``--database-url``,
settings, a clean error exit).

Only typer and rich at the top, like ``cli.py``: each command imports what it runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from cadenza.bootstrap import Runtime
    from cadenza.domain.commands import StartInstance
    from cadenza.domain.json import JSONObject
    from cadenza.interfaces.progress import Progress
    from cadenza.settings import Settings

err = Console(stderr=True, soft_wrap=True)  # a path or an error is never cut mid-word

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="CADENZA_DATABASE_URL",
        help="sqlite:///path, postgresql://... or mysql://... (MySQL 8 / MariaDB)",
    ),
]


def _settings(database_url: str | None) -> Settings:
    from cadenza.settings import Settings

    settings = Settings()
    if database_url:
        settings.database_url = database_url
    return settings


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _load(path: Path) -> JSONObject:
    from cadenza.bootstrap.standalone import DocumentError, read_document

    try:
        return read_document(path)
    except DocumentError as exc:
        raise _fail(str(exc)) from exc


def validate(file: Path) -> None:
    """Validate a definition file and list every problem."""
    from cadenza.bootstrap import build
    from cadenza.domain.errors import DefinitionInvalid
    from cadenza.settings import Settings

    document = _load(file)

    async def _run() -> None:
        runtime = await build(Settings(database_url="sqlite://"), migrate=False, run_worker=False)
        try:
            definition = await runtime.definitions.validate(document)
        finally:
            await runtime.store.close()
            await runtime.egress.aclose()
        nodes = len(definition.graph.nodes)
        typer.echo(f"{file}: valid ({definition.id}, {nodes} nodes, {definition.content_hash})")

    try:
        asyncio.run(_run())
    except DefinitionInvalid as exc:
        raise _fail(f"{file}: {exc}") from exc


def run(
    file: Path,
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value (JSON values allowed)")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="JSON/YAML file of inputs")
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option("--include", help="also publish these definitions (subprocesses)"),
    ] = None,
    database_url: DatabaseOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress")] = False,
) -> None:
    """Publish FILE, start an instance, show live progress, print the outputs as JSON."""
    from cadenza.bootstrap.standalone import DocumentError, parse_input_pairs

    document = _load(file)
    included = [_load(p) for p in include or []]
    try:
        inputs = _load(input_file) if input_file else {}
        inputs.update(parse_input_pairs(input or []))
    except DocumentError as exc:
        raise _fail(str(exc)) from exc
    settings = _settings(database_url)
    code = asyncio.run(_run_instance(settings, document, included, inputs, quiet))
    raise typer.Exit(code)


async def _run_instance(
    settings: Settings,
    document: JSONObject,
    included: list[JSONObject],
    inputs: JSONObject,
    quiet: bool,
) -> int:
    from cadenza.application.definitions import InputsInvalid
    from cadenza.application.usage import usage_totals
    from cadenza.bootstrap import build, tune_gc
    from cadenza.domain.commands import StartInstance
    from cadenza.domain.errors import DefinitionInvalid, DomainError
    from cadenza.domain.status import InstanceStatus
    from cadenza.interfaces.progress import Progress

    runtime = await build(settings)
    tune_gc()
    try:
        for doc in included:
            await runtime.definitions.publish(doc)
        stored = await runtime.definitions.publish(document)
        _, plan = await runtime.definitions.plan(stored.process_id, stored.version)
        runtime.definitions.check_inputs(plan.definition, inputs)
        progress = Progress(list(plan.root.order))
        runtime.engine.subscribe(progress.feed)
        await runtime.start()
        start = StartInstance(stored.process_id, inputs, version=stored.version)
        inst = await _follow(runtime, start, progress, quiet)
    except (DefinitionInvalid, InputsInvalid, DomainError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    finally:
        await runtime.close()
    totals = usage_totals(inst)
    if totals["tokens"] and not quiet:
        err.print(
            f"usage: {totals['tokens']:.0f} tokens (prompt {totals['prompt_tokens']:.0f}, "
            f"completion {totals['completion_tokens']:.0f}), cost {totals['cost']:.6f}",
            highlight=False,
        )
    if inst.status is InstanceStatus.COMPLETED:
        typer.echo(json.dumps(inst.outputs, indent=2, ensure_ascii=False))
        return 0
    err.print(f"[red]instance {inst.id} {inst.status}:[/red] {inst.error}", highlight=False)
    return 1


async def _follow(runtime: Runtime, start: StartInstance, progress: Progress, quiet: bool):  # type: ignore[no-untyped-def]
    instance_id = await runtime.engine.submit(start)
    if isinstance(instance_id, BaseException):
        raise instance_id
    assert isinstance(instance_id, str)
    progress.follow(instance_id)
    if quiet or not sys.stderr.isatty():
        inst = await runtime.engine.wait_finished(instance_id)
        if not quiet:
            err.print(progress.render())
        return inst
    from rich.live import Live

    with Live(progress.render(), console=err, refresh_per_second=8) as live:
        waiter = asyncio.ensure_future(runtime.engine.wait_finished(instance_id))
        while not waiter.done():
            live.update(progress.render())
            await asyncio.wait([waiter], timeout=0.125)
        live.update(progress.render())
        return waiter.result()


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(run)
