"""Starting an instance: a command from outside, or a subprocess node starting its child."""

from __future__ import annotations

from cadenza.application.definitions import VarsInvalid
from cadenza.application.engine.batch import Batch
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.ports import TemplateError
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.errors import Conflict, NotFound
from cadenza.domain.instance import Instance
from cadenza.domain.timers import TimerKind


async def start_instance(b: Batch, c: cmd.StartInstance) -> str:
    """Journal a new instance and mark it for deciding; returns its id (or, for a repeated
    idempotency key, the id of the instance that key started)."""
    uow, definitions = b.uow, b.deps.definitions
    if c.idempotency_key:
        existing = uow.keys.get(c.idempotency_key) or await uow.tx.instance_by_idempotency_key(
            c.idempotency_key
        )
        if existing is not None:
            return existing
    stored = await uow.tx.definition(c.process_id, c.version)
    if stored is None or stored.workspace_id != c.workspace_id:
        # another tenant's process does not exist for this one
        which = "latest published version" if c.version is None else f"version {c.version}"
        raise NotFound(f"process {c.process_id!r} has no {which}")
    limit = definitions.limits.max_subprocess_depth
    if c.depth > limit:
        # a process that starts itself would otherwise start children in this same batch
        # until memory runs out, never committing (the cycle check at publish time cannot
        # see drafts or every version pin)
        raise Conflict(
            f"subprocess depth limit: {c.process_id!r} would run {c.depth} levels deep; "
            f"the limit is {limit} (setting max_subprocess_depth)"
        )
    plan = definitions.plan_for(stored)
    if not (c.inputs_checked and c.version == stored.version):
        definitions.check_inputs(plan.definition, c.inputs)
    iid = b.deps.new_id()
    inst = Instance(iid)
    try:
        variables = await b.deps.templates.render(plan.definition.vars, {"inputs": c.inputs})
    except TemplateError as exc:
        raise VarsInvalid(c.process_id, str(exc)) from exc
    if (problem := definitions.value_problem(variables, "vars")) is not None:
        raise VarsInvalid(c.process_id, f"vars{problem[0]}: {problem[1]}")
    inst.record(
        b.stamp,
        ev.InstanceStarted(
            process_id=stored.process_id,
            version=stored.version,
            definition_hash=stored.content_hash,
            inputs=dict(c.inputs),
            vars=variables if isinstance(variables, dict) else {},
            parent_instance_id=c.parent_instance_id,
            parent_task_id=c.parent_task_id,
            idempotency_key=c.idempotency_key,
            workspace_id=c.workspace_id,
            depth=c.depth,
        ),
    )
    lo = Loaded(inst, plan, stored, is_new=True, trace_context=c.trace_context)
    uow.add(lo, c.idempotency_key)
    timeout = plan.definition.settings.timeout_s
    if timeout:
        uow.add_timer(iid, None, TimerKind.INSTANCE_TIMEOUT, b.now + timeout)
    b.drive(lo)
    return iid
