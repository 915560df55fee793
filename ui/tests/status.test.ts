import { describe, expect, it } from "vitest";
import type { TaskStatus } from "../src/api/status";
import { applyEvent, nodeStatuses, parseStreamEvent } from "../src/monitor/status";

type T = { id: string; node_id: string; status: TaskStatus };
const make = (e: { task_id: string; node_id: string }, status: TaskStatus): T => ({ id: e.task_id, node_id: e.node_id, status });

describe("task status on the graph", () => {
  it("aggregates iterations: in flight first, then failures, then outcomes", () => {
    expect(
      nodeStatuses([
        { node_id: "a", status: "completed" },
        { node_id: "a", status: "running" },
        { node_id: "b", status: "completed" },
        { node_id: "b", status: "failed" },
        { node_id: "c", status: "skipped" },
        { node_id: "c", status: "completed" },
      ]),
    ).toEqual({ a: "running", b: "failed", c: "completed" });
  });

  it("moves a known task to the status of an event", () => {
    const tasks: T[] = [{ id: "t1", node_id: "a", status: "scheduled" }];
    const { tasks: next, known } = applyEvent(tasks, { type: "TaskCompleted", task_id: "t1" }, make);
    expect(next).toEqual([{ id: "t1", node_id: "a", status: "completed" }]);
    expect(known).toBe(true);
    expect(tasks[0]!.status).toBe("scheduled");
  });

  it("adds a task an event introduces, and asks for a refetch when it cannot", () => {
    const added = applyEvent<T>([], { type: "TaskScheduled", task_id: "t2", node_id: "b" }, make);
    expect(added.tasks).toEqual([{ id: "t2", node_id: "b", status: "scheduled" }]);
    expect(applyEvent<T>([], { type: "TaskCompleted", task_id: "t9" }, make).known).toBe(false);
    expect(applyEvent<T>([], { type: "InstanceCompleted" }, make).known).toBe(true);
  });

  it("reads flat and nested stream payloads", () => {
    expect(parseStreamEvent('{"type":"TaskLeased","task_id":"t"}')).toMatchObject({ type: "TaskLeased", task_id: "t" });
    expect(parseStreamEvent('{"data":{"task_id":"t"}}', "TaskFailed")).toMatchObject({ type: "TaskFailed", task_id: "t" });
    expect(parseStreamEvent("not json")).toBeNull();
  });
});
