"""The three one-node processes the cross-process tracing tests run: one completes, one fails
(division by zero in its template), one waits an hour (cancelled by the test)."""

from __future__ import annotations

from typing import Any


def doc(process_id: str, node: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "nodes": [{"id": "step", **node}],
        "outputs": {"out": "{{ nodes.step.output }}"},
    }


DOCS = [
    doc("shout", {"type": "transform", "config": {"output": "{{ inputs.x }}!"}}),
    doc("divide", {"type": "transform", "config": {"output": "{{ 1 // inputs.zero }}"}}),
    doc("nap", {"type": "wait", "config": {"duration": "1h"}}),
]
