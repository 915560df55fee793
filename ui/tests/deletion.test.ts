import { describe, expect, it } from "vitest";
import { deleteBlocker, deletionDone, deletionPercent, nameConfirmed, refusedByHolds, tableRows } from "../src/system/deletion";

const problem = (status: number, detail: string) => ({ type: "about:blank", title: "Conflict", status, detail });

describe("workspace deletion", () => {
  it("is refused here for the default workspace and the one the admin acts in", () => {
    expect(deleteBlocker({ id: "default" }, "ws-a")).toBe("default");
    expect(deleteBlocker({ id: "ws-a" }, "ws-a")).toBe("current");
    expect(deleteBlocker({ id: "ws-b" }, "ws-a")).toBeNull();
    expect(deleteBlocker({ id: "ws-b" }, null)).toBeNull();
  });

  it("needs the exact name typed", () => {
    expect(nameConfirmed(" team-a ", "team-a")).toBe(true);
    expect(nameConfirmed("Team-A", "team-a")).toBe(false);
    expect(nameConfirmed("team-", "team-a")).toBe(false);
    expect(nameConfirmed("", "team-a")).toBe(false);
  });

  it("counts progress from the rows deleted and left", () => {
    expect(deletionPercent({ rows_left: 0, deleted: {} })).toBe(100);
    expect(deletionPercent({ rows_left: 30, deleted: {} })).toBe(0);
    expect(deletionPercent({ rows_left: 2, deleted: { events: 5, instances: 1 } })).toBe(75);
    expect(deletionPercent({ rows_left: 2, deleted: { events: 1 } })).toBe(33);
  });

  it("lists each table once, with rows left and deleted, by name", () => {
    expect(tableRows({ remaining: { tasks: 3, definitions: 2 }, deleted: { tasks: 4, events: 9 } })).toEqual([
      { table: "definitions", left: 2, deleted: 0 },
      { table: "events", left: 0, deleted: 9 },
      { table: "tasks", left: 3, deleted: 4 },
    ]);
  });

  it("tells a legal-hold refusal and a finished deletion from other problems", () => {
    expect(refusedByHolds(problem(409, "2 instance(s) of workspace 'ws-a' are under a legal hold: i1, i2; clear the holds before deleting the workspace"))).toBe(true);
    expect(refusedByHolds(problem(409, "the default workspace cannot be deleted"))).toBe(false);
    expect(refusedByHolds(problem(403, "legal hold"))).toBe(false);
    expect(deletionDone(problem(404, "no workspace 'ws-a' (a finished deletion leaves none)"))).toBe(true);
    expect(deletionDone(problem(409, "workspace 'ws-a' is being deleted"))).toBe(false);
  });
});
