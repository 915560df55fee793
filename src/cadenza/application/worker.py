"""The local worker: runs leased tasks with their executor and reports back to the engine."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping

from cadenza.application.failpoints import crash_point
from cadenza.application.pii_rules import LOG_WORKSPACE
from cadenza.application.ports_nodes import LeaseLost, NodeCall, NodeExecutor, NodeFailure
from cadenza.application.ports_obs import NoTracer, SpanValue, Tracer
from cadenza.application.redaction import Redactor
from cadenza.application.secrets import SecretVault, TaskSecrets
from cadenza.application.work import Capacity, Work
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.commands import Outcome
from cadenza.domain.json import JSONObject

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 300.0


class Worker:
    def __init__(
        self,
        post: Callable[[cmd.Command], None],
        submit: Callable[[cmd.Command], Awaitable[object]],
        executors: Mapping[str, NodeExecutor],
        capacity: Capacity,
        vault: SecretVault | None,
        on_slot_freed: Callable[[], None],
    ) -> None:
        self._post = post
        self._submit = submit
        self._executors = executors
        self._capacity = capacity
        self._vault = vault
        self._on_slot_freed = on_slot_freed
        self.running: dict[str, asyncio.Task[None]] = {}
        self.publish_live: Callable[[ev.Event], None] | None = None
        self.tracer: Tracer = NoTracer()  # set by Engine.use_tracer
        self.accepting = True  # False while shutting down: new work is left for others
        self.on_start: Callable[[Work], None] | None = None  # metrics: who runs what

    def start(self, work: Work) -> None:
        if not self.accepting:
            return  # the lease is released when the engine stops
        if self.on_start is not None:
            self.on_start(work)
        stale = self.running.get(work.task_id)
        if stale is not None:  # our own lease expired and the task came back: drop the old run
            stale.cancel()
        self.running[work.task_id] = asyncio.create_task(
            self._run(work), name=f"task-{work.task_id}"
        )

    def cancel(self, task_id: str) -> None:
        task = self.running.get(task_id)
        if task is not None:
            task.cancel()

    async def drain(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the running tasks to finish."""
        tasks = list(self.running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)

    async def stop(self) -> None:
        """Abandon running tasks: their leases expire and another worker takes them over."""
        tasks = list(self.running.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, w: Work) -> None:
        attributes: dict[str, SpanValue] = {
            "node_id": w.node.id,
            "node_type": w.node.type,
            "attempt": w.attempt,
        }
        LOG_WORKSPACE.set(w.workspace_id)  # this task's own context: log lines follow its rules
        try:
            with self.tracer.task(w.instance_id, w.task_id, attributes, w.trace_context):
                await self._execute(w)
        except asyncio.CancelledError:
            pass
        finally:
            if self.running.get(w.task_id) is asyncio.current_task():
                del self.running[w.task_id]
            self._capacity.give_back()
            self._on_slot_freed()

    async def _execute(self, w: Work) -> None:
        # Everything this task reports passes ``redact``: the values revealed to it (through
        # ``call.secrets``, at its egress) are masked in outputs, errors, steps and tokens.
        redact = Redactor()

        def fail(error: str, retryable: bool) -> None:
            error = redact.text(error)
            self._post(
                cmd.FailTask(w.instance_id, w.task_id, w.attempt, w.lease_token, error, retryable)
            )

        executor = self._executors.get(w.node.type)
        if executor is None:
            fail(f"no executor is registered for node type {w.node.type!r}", False)
            return

        async def record_step(step: JSONObject) -> None:
            outcome = await self._submit(
                cmd.RecordStep(
                    w.instance_id,
                    w.task_id,
                    w.attempt,
                    w.lease_token,
                    redact.obj(step),
                )
            )
            if outcome != Outcome.OK:
                raise LeaseLost(f"task {w.task_id} is no longer ours ({outcome})")

        def on_tokens(text: str) -> None:
            if self.publish_live is not None:
                self.publish_live(
                    ev.TaskTokens(
                        instance_id=w.instance_id,
                        event_id=f"{w.task_id}:tokens",
                        occurred_at=time.time(),
                        task_id=w.task_id,
                        text=redact.text(text),
                    )
                )

        call = NodeCall(
            w.instance_id,
            w.task_id,
            w.node,
            w.attempt,
            w.idempotency_key,
            w.context,
            steps=w.steps,
            record_step=record_step,
            on_tokens=on_tokens,
            workspace_id=w.workspace_id,
            secrets=TaskSecrets(self._vault, w.workspace_id, redact),
        )
        timeout = w.node.timeout_s or DEFAULT_TIMEOUT_S
        crash_point("after-claim-before-execute")
        try:
            async with asyncio.timeout(timeout):
                result = await executor.execute(call)
        except LeaseLost:
            return  # another worker holds the task now; its result will count
        except NodeFailure as exc:
            fail(str(exc), exc.retryable)
            return
        except TimeoutError:
            fail(f"timed out after {timeout:g}s", True)
            return
        except Exception as exc:  # an executor bug must not kill the worker
            trace = redact.text("".join(traceback.format_exception(exc)))
            log.error("executor for %s failed\n%s", w.node.type, trace)
            fail(f"{type(exc).__name__}: {exc}", True)
            return
        crash_point("after-execute-before-complete")
        output = redact.json(result.output)
        self._post(
            cmd.CompleteTask(
                w.instance_id,
                w.task_id,
                w.attempt,
                w.lease_token,
                output,
                result.ports,
                redact.obj(result.usage),
            )
        )
