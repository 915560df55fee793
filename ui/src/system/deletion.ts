// Deleting a workspace: the rules the dialog follows, kept pure so they are unit-tested.
import type { Problem } from "../api/problem";
import type { Deletion, Workspace } from "../api/types";

export const DEFAULT_WORKSPACE = "default";
/** How often the progress is asked for while the job deletes batches. */
export const POLL_MS = 1000;

/** Why this workspace cannot be deleted from here, or null. The current workspace is refused
 * because a principal acting in a workspace being deleted is read-only (it could not even
 * follow the progress); the default workspace is refused by the API. */
export function deleteBlocker(workspace: Pick<Workspace, "id">, current: string | null): "default" | "current" | null {
  if (workspace.id === DEFAULT_WORKSPACE) return "default";
  if (workspace.id === current) return "current";
  return null;
}

/** The typed confirmation: the exact name, surrounding spaces ignored. */
export function nameConfirmed(typed: string, name: string): boolean {
  return typed.trim() === name;
}

function sum(rows: Record<string, number>): number {
  return Object.values(rows).reduce((a, b) => a + b, 0);
}

/** Deleted rows out of deleted + left, as a whole percent (100 with nothing to delete). */
export function deletionPercent(d: Pick<Deletion, "rows_left" | "deleted">): number {
  const done = sum(d.deleted);
  const total = done + d.rows_left;
  return total === 0 ? 100 : Math.floor((done * 100) / total);
}

export interface TableRow {
  table: string;
  left: number;
  deleted: number;
}

/** One row per table with rows left or deleted, by name. */
export function tableRows(d: Pick<Deletion, "remaining" | "deleted">): TableRow[] {
  const names = [...new Set([...Object.keys(d.remaining), ...Object.keys(d.deleted)])].sort();
  return names.map((table) => ({ table, left: d.remaining[table] ?? 0, deleted: d.deleted[table] ?? 0 }));
}

/** A 409 from DELETE that is about legal holds (the default workspace's 409 is not). */
export function refusedByHolds(problem: Problem): boolean {
  return problem.status === 409 && /legal hold/i.test(problem.detail ?? "");
}

/** The progress route answers 404 once the job removed the workspace: the deletion is done. */
export function deletionDone(problem: Problem): boolean {
  return problem.status === 404;
}
