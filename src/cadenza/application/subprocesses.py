"""Publishing refuses a process that would start itself, directly or through others.

This is the first of two guards: the engine also stops any chain of subprocess instances
deeper than ``Limits.max_subprocess_depth`` (a draft, or a version pinned before it existed,
can still close a loop that no publish saw).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from cadenza.domain.definition import Definition, Graph
from cadenza.domain.errors import DefinitionInvalid, Problem

Load = Callable[[str, int | None], Awaitable[Definition | None]]
"""The stored definition of a process id at a version (None: latest published), if any."""


def subprocess_refs(graph: Graph, path: str = "$") -> Iterator[tuple[str, str, int | None]]:
    """(JSON path of the node, process id, pinned version or None) of every subprocess node."""
    for index, node in enumerate(graph.nodes):
        where = f"{path}.nodes[{index}]"
        if node.type == "subprocess":
            process, version = node.config.get("process"), node.config.get("version")
            if isinstance(process, str):
                pinned = version if isinstance(version, int) else None
                yield f"{where}.config.process", process, pinned
        if node.body is not None:
            yield from subprocess_refs(node.body, f"{where}.config.body")


async def refuse_cycles(
    definition: Definition, version: int | None, load: Load, *, draft: bool = False
) -> None:
    """Raise ``DefinitionInvalid`` when ``definition`` at ``version`` (None: not known yet)
    could start itself through the subprocesses it calls.

    Being published, the document stands for its process's latest published version; a
    ``draft`` (test-run by an editor) only for its own version number. Every other process is
    read as stored. Cycles that do not pass through this process are not its problem."""
    root = definition.id
    problems: list[Problem] = []
    for path, process, pinned in subprocess_refs(definition.graph):
        trail = await _path_back((root, version, not draft), process, pinned, load)
        if trail is not None:
            chain = " -> ".join([root, *trail])
            problems.append(
                Problem(
                    path,
                    f"subprocess cycle {chain}: a process cannot start itself, directly or "
                    "through other processes",
                )
            )
    if problems:
        raise DefinitionInvalid(problems)


async def _path_back(
    root: tuple[str, int | None, bool], process: str, pinned: int | None, load: Load
) -> list[str] | None:
    """The process ids from ``process`` back to ``root`` (id, version, stands for latest),
    depth first, or None."""
    root_id, version, latest = root
    seen: set[tuple[str, int | None]] = set()
    stack: list[tuple[str, int | None, list[str]]] = [(process, pinned, [process])]
    while stack:
        current, at, trail = stack.pop()
        if current == root_id and ((at is None and latest) or (at is not None and at == version)):
            return trail
        if (current, at) in seen:
            continue
        seen.add((current, at))
        found = await load(current, at)
        if found is None:
            continue
        for _, child, child_version in subprocess_refs(found.graph):
            stack.append((child, child_version, [*trail, child]))
    return None
