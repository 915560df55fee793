"""The one home of usage arithmetic: one task's calls added up, tokens and cost summed over
tasks, and the budget check. (What a call costs is priced in ``providers``.)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cadenza.domain.instance import Instance
from cadenza.domain.json import JSONObject

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "cost")
BUDGET_KEYS = ("tokens", "cost")
_ROUNDED = ("cost", "latency_s")


def add_usage(total: JSONObject, more: JSONObject) -> JSONObject:
    """Sum token counts, cost and latency of several calls (an agent's turns)."""
    out = dict(total)
    for key in (*USAGE_KEYS, "latency_s"):
        a, b = out.get(key, 0), more.get(key, 0)
        if isinstance(a, int | float) and isinstance(b, int | float):
            out[key] = round(a + b, 8) if key in _ROUNDED else a + b
    for key in ("provider", "model"):
        if key in more:
            out[key] = more[key]
    calls = out.get("calls", 0)
    out["calls"] = (int(calls) if isinstance(calls, int | float) else 0) + 1
    return out


def sum_usage(usages: Iterable[object]) -> dict[str, float]:
    """Prompt and completion tokens, their total and the cost over tasks' usage records
    (anything that is not a mapping, such as a missing record, counts as nothing)."""
    totals = {"prompt_tokens": 0.0, "completion_tokens": 0.0, "tokens": 0.0, "cost": 0.0}
    for usage in usages:
        if not isinstance(usage, Mapping):
            continue
        for key in USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] += value
    totals["tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
    return totals


def usage_totals(inst: Instance) -> dict[str, float]:
    """Tokens and cost of every completed task of an instance."""
    return sum_usage(t.usage for t in inst.tasks.values())


def over_budget(budget: JSONObject | None, inst: Instance) -> str | None:
    """Why ``inst`` has spent more than ``budget`` (settings.budget) allows, or None."""
    if not budget:
        return None
    used = usage_totals(inst)
    for key in BUDGET_KEYS:
        limit = budget.get(key)
        if isinstance(limit, int | float) and used[key] > limit:
            return f"budget exceeded: {key} used {used[key]:g} > limit {limit:g} (settings.budget)"
    return None
