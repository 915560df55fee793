"""The template context of a node: inputs, vars, visible node outputs, item/index, instance."""

from __future__ import annotations

from typing import NoReturn

from cadenza.application.ports import TemplateError
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSON
from cadenza.domain.tasks import ROOT_SCOPE


class _NoSecrets:
    """``secrets`` in every template context: any use fails with the reason. Values never
    enter a context; an http node's url, query and headers take ``{{ secrets.NAME }}``
    references that are filled in after rendering (see ``domain.secrets``)."""

    _REASON = (
        "secrets are not available in templates; reference one as {{ secrets.NAME }} in an "
        "http node's url, query or headers"
    )

    def _refuse(self, *_: object) -> NoReturn:
        raise TemplateError(self._REASON)

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()

    __getitem__ = __iter__ = __len__ = __str__ = __contains__ = __bool__ = _refuse

    def __repr__(self) -> str:
        return "<secrets: not available in templates>"


NO_SECRETS = _NoSecrets()


def template_context(inst: Instance, scope: str) -> dict[str, object]:
    ctx: dict[str, object] = {
        "inputs": inst.inputs,
        "vars": inst.vars,
        "nodes": inst.node_outputs(scope),
        "instance": {"id": inst.id, "process_id": inst.process_id, "version": inst.version},
        "secrets": NO_SECRETS,
    }
    key = scope
    item_set = iteration_set = False
    while key != ROOT_SCOPE:
        s = inst.scopes[key]
        owner_type = inst.task_at(s.parent, s.owner)
        kind = owner_type.node_type if owner_type is not None else ""
        if kind == "map" and not item_set:
            ctx["item"], ctx["index"] = s.item, s.index
            item_set = True
        if kind == "loop" and not iteration_set:
            ctx["iteration"] = s.index
            iteration_set = True
        key = s.parent
    return ctx


def idempotency_key(instance_id: str, scope: str, node_id: str, attempt: int) -> str:
    """``instance:node:iteration:attempt``: the same attempt retried after a crash keeps its key."""
    iteration = scope.strip("/") or "0"
    return f"{instance_id}:{node_id}:{iteration}:{attempt}"


def scope_output(inst: Instance, scope: str, leaves: tuple[str, ...]) -> JSON:
    """A body's result when no `output` template is given: its last node's output."""
    outputs = inst.node_outputs(scope)
    values: dict[str, JSON] = {}
    for leaf in leaves:
        entry = outputs.get(leaf)
        if isinstance(entry, dict) and (
            scope == ROOT_SCOPE or inst.task_at(scope, leaf) is not None
        ):
            values[leaf] = entry.get("output")
    if len(values) == 1:
        return next(iter(values.values()))
    return dict(values)
