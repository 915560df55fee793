"""The API's use cases over definitions, instances and tasks, each inside one workspace.

Every operation takes the caller's ``Principal``; the permission is checked here and the
workspace is carried into every lookup (``Queries``), so no route can forget either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cadenza.application.audit import NEW_ID, Auditor, Target, audited, created
from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine
from cadenza.application.identity import Permission, Principal
from cadenza.application.ports import Clock, InstanceRow, StoredDefinition
from cadenza.application.ports_api import InstanceFilter, Queries, TaskFilter
from cadenza.application.quotas import Quotas
from cadenza.application.subprocesses import Load, refuse_cycles
from cadenza.domain import commands as cmd
from cadenza.domain.definition import DEFINITION_TRANSITIONS, Definition, DefinitionStatus
from cadenza.domain.errors import Conflict, NotFound
from cadenza.domain.events import Event
from cadenza.domain.json import JSON, JSONObject


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # added | removed | changed
    before: JSON = None
    after: JSON = None


def diff_documents(a: JSON, b: JSON, path: str = "$") -> list[Change]:
    """Structural differences of two JSON documents; nodes and edges are matched by id."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Change] = []
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}"
            if key not in a:
                out.append(Change(sub, "added", after=b[key]))
            elif key not in b:
                out.append(Change(sub, "removed", before=a[key]))
            else:
                out.extend(diff_documents(_keyed(a[key]), _keyed(b[key]), sub))
        return out
    return [] if a == b else [Change(path, "changed", a, b)]


def _keyed(value: JSON) -> JSON:
    """Lists of nodes/edges compare by identity, not position."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = [v for v in value if isinstance(v, dict)]
        if all("id" in v for v in items):
            return {str(v["id"]): v for v in items}
        if all("from" in v and "to" in v for v in items):
            return {f"{v['from']}->{v['to']}": v for v in items}
    return value


class Processes:
    def __init__(
        self,
        definitions: Definitions,
        queries: Queries,
        engine: Engine,
        clock: Clock,
        quotas: Quotas | None = None,
        audit: Auditor | None = None,
    ) -> None:
        self.definitions = definitions
        self.queries = queries
        self._engine = engine
        self._clock = clock
        self.quotas = quotas  # None: no workspace quotas (starts are not counted)
        self._audit = audit  # every change below appends an audit row (docs/audit.md)

    # ---- definitions ---------------------------------------------------------------------
    async def save(self, p: Principal, document: Mapping[str, object]) -> StoredDefinition:
        """Validate and store a draft (raises DefinitionInvalid listing every problem)."""
        p.require(Permission.EDIT)
        d = await self.definitions.validate(document)
        stored = StoredDefinition(
            d.id,
            0,
            d.content_hash,
            DefinitionStatus.DRAFT.value,
            d.document,
            self._clock.now(),
            p.workspace_id,
        )
        after: JSONObject = {"content_hash": d.content_hash, "name": d.name}
        async with audited(self._audit, p, "definition.save", _proc(d.id), after=after):
            return await self.queries.save_draft(stored)

    async def all(self, p: Principal) -> list[StoredDefinition]:
        p.require(Permission.READ)
        return await self.queries.processes(p.workspace_id)

    async def version(self, p: Principal, process_id: str, version: int | None) -> StoredDefinition:
        p.require(Permission.READ)
        found = await self.queries.definition(p.workspace_id, process_id, version)
        if found is None:
            which = "" if version is None else f" version {version}"
            raise NotFound(f"process {process_id!r}{which} not found")
        return found

    async def latest_published(self, p: Principal, process_id: str) -> StoredDefinition | None:
        """The version new instances start by default (None: nothing published)."""
        p.require(Permission.READ)

        async def load() -> StoredDefinition | None:
            versions = await self.queries.versions(p.workspace_id, process_id)
            return next((v for v in versions if v.status == DefinitionStatus.PUBLISHED), None)

        return await self.definitions.cache.latest(p.workspace_id, process_id, load)

    async def versions(self, p: Principal, process_id: str) -> list[StoredDefinition]:
        p.require(Permission.READ)
        found = await self.queries.versions(p.workspace_id, process_id)
        if not found:
            raise NotFound(f"process {process_id!r} not found")
        return found

    async def set_status(
        self, p: Principal, process_id: str, version: int, status: DefinitionStatus
    ) -> StoredDefinition:
        """Publish (draft -> published) or archive (published/draft -> archived)."""
        p.require(Permission.EDIT)
        current = await self.version(p, process_id, version)
        if current.status == status:
            return current
        if status not in DEFINITION_TRANSITIONS[DefinitionStatus(current.status)]:
            raise Conflict(f"version {version} is {current.status}; it cannot become {status}")
        if status is DefinitionStatus.PUBLISHED:
            definition = await self.definitions.validate(current.document)
            await refuse_cycles(definition, version, self._published_in(p))
        verb = "publish" if status is DefinitionStatus.PUBLISHED else "archive"
        target = Target("definition_version", f"{process_id}@{version}")
        change = {"before": {"status": current.status}, "after": {"status": status.value}}
        async with audited(self._audit, p, f"definition.{verb}", target, **change):
            await self.queries.set_status(p.workspace_id, process_id, version, status.value)
        await self.definitions.cache.changed(p.workspace_id, process_id)
        return await self.version(p, process_id, version)

    def _published_in(self, p: Principal) -> Load:
        """Definitions as a subprocess node of ``p``'s workspace would find them."""

        async def load(process_id: str, version: int | None) -> Definition | None:
            if version is None:
                found = await self.latest_published(p, process_id)
            else:
                found = await self.queries.definition(p.workspace_id, process_id, version)
            return None if found is None else self.definitions.plan_for(found).definition

        return load

    async def archive_all(self, p: Principal, process_id: str) -> int:
        versions = await self.versions(p, process_id)
        p.require(Permission.EDIT)
        n = 0
        before: JSONObject = {"versions": {str(v.version): v.status for v in versions}}
        async with audited(self._audit, p, "definition.delete", _proc(process_id), before=before):
            for v in versions:
                if v.status != DefinitionStatus.ARCHIVED:
                    n += await self.queries.set_status(
                        p.workspace_id, process_id, v.version, DefinitionStatus.ARCHIVED.value
                    )
        await self.definitions.cache.changed(p.workspace_id, process_id)
        return n

    # ---- instances -----------------------------------------------------------------------
    async def start(
        self,
        p: Principal,
        process_id: str,
        inputs: JSONObject,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        p.require(Permission.RUN)
        if version is None:
            found = await self.latest_published(p, process_id)
            if found is None:
                raise NotFound(f"process {process_id!r} has no published version")
            stored = found
        else:
            stored = await self.version(p, process_id, version)
        version = stored.version
        if stored.status == DefinitionStatus.ARCHIVED:
            raise Conflict(f"version {version} of {process_id!r} is archived")
        definition = self.definitions.plan_for(stored).definition
        if stored.status == DefinitionStatus.DRAFT:
            p.require(Permission.EDIT)  # test runs of drafts are for editors
            # publishing checks cycles; a draft calling its own version number would not be
            await refuse_cycles(definition, version, self._published_in(p), draft=True)
        await self.definitions.check_inputs_in_thread(definition, inputs)
        key = f"{p.workspace_id}:{idempotency_key}" if idempotency_key else None
        if key is not None and (earlier := await self.queries.instance_by_key(p.workspace_id, key)):
            # a repeat: the earlier instance, without a quota admission or an audit row (the
            # engine would answer the same; two repeats racing both reach it and are counted)
            return earlier
        start = cmd.StartInstance(
            process_id,
            inputs,
            version=version,
            idempotency_key=key,
            workspace_id=p.workspace_id,
            inputs_checked=True,
        )
        if self.quotas is None:
            return await self._start(p, start)
        async with self.quotas.admit_start(p.workspace_id):  # raises QuotaExceeded
            return await self._start(p, start)

    async def _start(self, p: Principal, start: cmd.StartInstance) -> str:
        """Submit a start; its audit row commits in the engine's batch with the instance."""
        after: JSONObject = {"process_id": start.process_id, "version": start.version}
        async with audited(self._audit, p, "instance.start", _inst(NEW_ID), after=after):
            result = str(await self._engine.submit(start))
            created(result)  # for a row appended after (no store took it)
        return result

    async def instance(self, p: Principal, instance_id: str) -> InstanceRow:
        p.require(Permission.READ)
        row = await self.queries.instance(p.workspace_id, instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id!r} not found")
        return row

    async def journal(self, p: Principal, instance_id: str) -> list[tuple[int, Event]]:
        """The instance's events in order (the lookup checks the workspace)."""
        p.require(Permission.READ)
        found = await self.queries.journal(p.workspace_id, instance_id)
        if found is None:
            raise NotFound(f"instance {instance_id!r} not found")
        return found

    async def instances(
        self, p: Principal, f: InstanceFilter
    ) -> tuple[list[InstanceRow], str | None]:
        p.require(Permission.READ)
        return await self.queries.instances(p.workspace_id, f)

    async def tasks(self, p: Principal, f: TaskFilter) -> list[JSONObject]:
        p.require(Permission.READ)
        return await self.queries.tasks(p.workspace_id, f)

    async def task(self, p: Principal, task_id: str) -> JSONObject:
        p.require(Permission.READ)
        row = await self.queries.task(p.workspace_id, task_id)
        if row is None:
            raise NotFound(f"task {task_id!r} not found")
        return row

    async def cancel(self, p: Principal, instance_id: str, reason: str | None) -> object:
        p.require(Permission.RUN)
        await self.instance(p, instance_id)
        why = reason or f"cancelled by {p.subject}"
        after: JSONObject = {"reason": why}
        async with audited(self._audit, p, "instance.cancel", _inst(instance_id), after=after):
            return await self._engine.submit(cmd.CancelInstance(instance_id, why))

    async def retry(self, p: Principal, instance_id: str, task_id: str | None = None) -> object:
        p.require(Permission.RUN)
        await self.instance(p, instance_id)
        after: JSONObject = {"task_id": task_id}
        async with audited(self._audit, p, "instance.retry", _inst(instance_id), after=after):
            return await self._engine.submit(cmd.RetryInstance(instance_id, task_id))

    async def retry_task(self, p: Principal, task_id: str) -> object:
        task = await self.task(p, task_id)
        return await self.retry(p, str(task["instance_id"]), task_id)

    async def signal(self, p: Principal, task_id: str, payload: JSONObject) -> object:
        p.require(Permission.RUN)
        task = await self.task(p, task_id)
        signal = cmd.SignalTask(str(task["instance_id"]), task_id, {**payload, "by": p.subject})
        decision = payload.get("decision")
        verb = decision if decision in ("approve", "reject") else "signal"
        after: JSONObject = {"instance_id": str(task["instance_id"]), "payload": payload}
        async with audited(self._audit, p, f"task.{verb}", Target("task", task_id), after=after):
            return await self._engine.submit(signal)


def _proc(process_id: str) -> Target:
    return Target("definition", process_id)


def _inst(instance_id: str) -> Target:
    return Target("instance", instance_id)
