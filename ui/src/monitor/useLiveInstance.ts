// An instance kept live: its detail, patched by the SSE stream and refetched (throttled) so the
// graph never drifts; polling takes over if the stream is unavailable.
import { useCallback, useEffect, useRef, useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { TaskStatus } from "../api/status";
import type { InstanceDetail, TaskInfo } from "../api/types";
import { api, streamUrl } from "../session/store";
import { applyEvent, isTerminal, nodeStatuses, parseStreamEvent } from "./status";

const EVENT_NAMES = [
  "message",
  "InstanceStarted", "InstanceCompleted", "InstanceFailed", "InstanceCancelled", "InstanceResumed",
  "TaskScheduled", "TaskWaiting", "TaskLeased", "TaskCompleted", "TaskStepRecorded", "TaskFailed",
  "TaskRetryScheduled", "TaskRequeued", "TaskSkipped", "TaskCancelled", "TaskReset", "ChildStarted",
];
const REFETCH_MS = 400;
const POLL_MS = 2000;

export interface LiveInstance {
  detail: InstanceDetail | undefined;
  error: Problem | null;
  statuses: Record<string, TaskStatus>;
  streaming: boolean;
  reload(): Promise<void>;
}

function newTask(
  event: { task_id: string; node_id: string; node_type?: string; attempt?: number; instance_id?: unknown; scope?: unknown },
  status: TaskStatus,
): TaskInfo {
  const now = Date.now() / 1000;
  return {
    id: event.task_id,
    instance_id: typeof event.instance_id === "string" ? event.instance_id : "",
    scope: typeof event.scope === "string" ? event.scope : "",
    node_id: event.node_id,
    node_type: event.node_type ?? "",
    status,
    attempt: event.attempt ?? 1,
    created_at: now,
    updated_at: now,
  };
}

export function useLiveInstance(instanceId: string | null): LiveInstance {
  const [detail, setDetail] = useState<InstanceDetail>();
  const [error, setError] = useState<Problem | null>(null);
  const [streaming, setStreaming] = useState(false);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const reload = useCallback(async () => {
    if (!instanceId) return;
    try {
      const data = await unwrap(api.GET("/api/v1/processes/instances/{instance_id}", { params: { path: { instance_id: instanceId } } }));
      setDetail(data);
      setError(null);
    } catch (failure) {
      setError(problemOf(failure));
    }
  }, [instanceId]);

  const soon = useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      void reload();
    }, REFETCH_MS);
  }, [reload]);

  useEffect(() => {
    setDetail(undefined);
    void reload();
    if (!instanceId || typeof EventSource === "undefined") return;
    const source = new EventSource(streamUrl("/api/v1/events/stream", { instance_id: instanceId }));
    const onEvent = (message: MessageEvent<string>) => {
      const event = parseStreamEvent(message.data, message.type === "message" ? "" : message.type);
      if (!event) return;
      const id = event["instance_id"];
      if (typeof id === "string" && id !== instanceId) return;
      setDetail((current) => (current ? { ...current, tasks: applyEvent(current.tasks, event, newTask).tasks } : current));
      soon();
    };
    for (const name of EVENT_NAMES) source.addEventListener(name, onEvent as EventListener);
    source.onopen = () => {
      setStreaming(true);
      soon(); // whatever happened between the first fetch and the stream opening
    };
    source.onerror = () => setStreaming(false);
    return () => {
      source.close();
      setStreaming(false);
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [instanceId, reload, soon]);

  // Without a stream, poll while the instance runs, or until its detail could be read at all
  // (a first fetch that failed under load must not leave the view empty for good).
  const known = detail !== undefined;
  const running = !known || !isTerminal(detail.status);
  useEffect(() => {
    if (!instanceId || (streaming && known) || !running) return;
    const poll = setInterval(() => void reload(), POLL_MS);
    return () => clearInterval(poll);
  }, [instanceId, streaming, known, running, reload]);

  return { detail, error, statuses: nodeStatuses(detail?.tasks ?? []), streaming, reload };
}
