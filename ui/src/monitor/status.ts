// Task status on the graph: one status per node (iterations of a map/loop body aggregated) and the
// live patch a stream event applies before the next refetch.
import { every, isOneOf, TASK_STATUSES, type InstanceStatus, type TaskStatus } from "../api/status";
import type { TaskInfo } from "../api/types";

export function asTaskStatus(status: string): TaskStatus {
  return isOneOf(TASK_STATUSES, status) ? status : "scheduled";
}

export function statusColor(status: string): string {
  return STATUS_COLORS[asTaskStatus(status)];
}

export const STATUS_COLORS: Record<TaskStatus, string> = {
  scheduled: "#868e96",
  running: "#1c7ed6",
  waiting: "#f59f00",
  completed: "#2f9e44",
  failed: "#e03131",
  skipped: "#adb5bd",
  cancelled: "#5c5f66",
};

/** Whether a task of this status is still in flight (its timeline bar runs up to now). */
export const TASK_ACTIVE: Record<TaskStatus, boolean> = {
  scheduled: true,
  running: true,
  waiting: true,
  completed: false,
  failed: false,
  skipped: false,
  cancelled: false,
};

export const INSTANCE_COLORS: Record<InstanceStatus, "processing" | "success" | "error" | "default"> = {
  running: "processing",
  completed: "success",
  failed: "error",
  cancelled: "default",
};

// Earlier wins: anything in flight shows first, then a failure, then the settled outcomes.
const PRECEDENCE = every<TaskStatus>()(["running", "waiting", "scheduled", "failed", "cancelled", "completed", "skipped"]);

type TaskLike = Pick<TaskInfo, "node_id"> & { status: string };

/** The status to show on each node, over every task (iteration, attempt) of that node. */
export function nodeStatuses(tasks: readonly TaskLike[]): Record<string, TaskStatus> {
  const byNode: Record<string, TaskStatus> = {};
  for (const task of tasks) {
    const status = asTaskStatus(task.status);
    const current = byNode[task.node_id];
    if (current === undefined || PRECEDENCE.indexOf(status) < PRECEDENCE.indexOf(current)) {
      byNode[task.node_id] = status;
    }
  }
  return byNode;
}

const EVENT_STATUS: Record<string, TaskStatus> = {
  TaskScheduled: "scheduled",
  TaskRetryScheduled: "scheduled",
  TaskRequeued: "scheduled",
  TaskReset: "scheduled",
  TaskLeased: "running",
  TaskStepRecorded: "running",
  TaskTokens: "running",
  TaskWaiting: "waiting",
  TaskCompleted: "completed",
  TaskFailed: "failed",
  TaskSkipped: "skipped",
  TaskCancelled: "cancelled",
};

export interface StreamEvent {
  type: string;
  task_id?: string;
  node_id?: string;
  node_type?: string;
  attempt?: number;
  [key: string]: unknown;
}

/** Read an SSE message: `{type, ...}` or `{type, data: {...}}`; null when it is not an event. */
export function parseStreamEvent(text: string, fallbackType = ""): StreamEvent | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const record = raw as Record<string, unknown>;
  const data = record["data"];
  const flat = typeof data === "object" && data !== null && !Array.isArray(data) ? { ...record, ...data } : record;
  const type = typeof flat["type"] === "string" ? flat["type"] : fallbackType;
  return type ? ({ ...flat, type } as StreamEvent) : null;
}

/**
 * Tasks after `event`: the task it names moves to the event's status (a new task is added when
 * the event says which node it belongs to). `known` is false when a refetch is needed to place it.
 */
export function applyEvent<T extends TaskLike & { id: string }>(
  tasks: readonly T[],
  event: StreamEvent,
  create: (event: StreamEvent & { task_id: string; node_id: string }, status: TaskStatus) => T,
): { tasks: T[]; known: boolean } {
  const status = EVENT_STATUS[event.type];
  const taskId = event.task_id;
  if (!status || !taskId) return { tasks: [...tasks], known: !event.type.startsWith("Task") };
  const index = tasks.findIndex((t) => t.id === taskId);
  if (index >= 0) {
    const next = [...tasks];
    next[index] = { ...(tasks[index] as T), status };
    return { tasks: next, known: true };
  }
  if (typeof event.node_id === "string") {
    return { tasks: [...tasks, create({ ...event, task_id: taskId, node_id: event.node_id }, status)], known: true };
  }
  return { tasks: [...tasks], known: false };
}

/** Whether an instance in this status changes no more on its own (a failed one waits for a retry). */
const SETTLED: Record<InstanceStatus, boolean> = { running: false, completed: true, failed: true, cancelled: true };

export function isTerminal(status: InstanceStatus): boolean {
  return SETTLED[status];
}
