// Bars of a task timeline: each task from creation to its last update, on one shared time axis.
import type { TaskStatus } from "../api/status";
import { TASK_ACTIVE } from "./status";

export interface Bar {
  id: string;
  label: string;
  status: TaskStatus;
  /** percent of the axis */
  left: number;
  width: number;
  seconds: number;
}

interface TaskTimes {
  id: string;
  node_id: string;
  status: TaskStatus;
  attempt: number;
  created_at: number;
  updated_at: number;
}

export function timelineBars(tasks: readonly TaskTimes[], now: number): { bars: Bar[]; span: number } {
  const times = tasks.map((t) => {
    const start = t.created_at * 1000;
    const end = TASK_ACTIVE[t.status] ? Math.max(now, start) : Math.max(t.updated_at * 1000, start);
    return { task: t, start, end };
  });
  if (times.length === 0) return { bars: [], span: 0 };
  const first = Math.min(...times.map((x) => x.start));
  const last = Math.max(...times.map((x) => x.end));
  const span = Math.max(last - first, 1);
  const bars = times
    .sort((a, b) => a.start - b.start)
    .map(({ task, start, end }) => ({
      id: task.id,
      label: task.attempt > 1 ? `${task.node_id} #${task.attempt}` : task.node_id,
      status: task.status,
      left: ((start - first) / span) * 100,
      width: Math.max(((end - start) / span) * 100, 0.5),
      seconds: (end - start) / 1000,
    }));
  return { bars, span: span / 1000 };
}
