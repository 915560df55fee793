// The audit view's pure parts: filters → API query, and a before/after pair → rows of a diff.
import type { AuditQuery } from "../api/types";

export interface AuditFilters {
  actor?: string;
  /** A prefix: `definition.` or `auth.login` (also matches `auth.login_failed`). */
  action?: string;
  target_type?: string;
  target_id?: string;
  /** Milliseconds since the epoch; `since` inclusive, `until` exclusive. */
  since?: number;
  until?: number;
}

/** The query of GET /audit (and its export) for the filters; empty fields filter nothing. */
export function auditQuery(filters: AuditFilters, limit?: number): AuditQuery {
  const query: AuditQuery = {};
  const text = (v: string | undefined) => (v && v.trim() ? v.trim() : undefined);
  const actor = text(filters.actor);
  const action = text(filters.action);
  const targetType = text(filters.target_type);
  const targetId = text(filters.target_id);
  if (actor) query.actor = actor;
  if (action) query.action = action;
  if (targetType) query.target_type = targetType;
  if (targetId) query.target_id = targetId;
  if (filters.since !== undefined) query.since = new Date(filters.since).toISOString();
  if (filters.until !== undefined) query.until = new Date(filters.until).toISOString();
  if (limit !== undefined) query.limit = limit;
  return query;
}

export type Change = "added" | "removed" | "changed" | "same";

export interface DiffRow {
  /** Dotted path of a leaf (`config.keys`); arrays are leaves, compared as JSON. */
  path: string;
  before: unknown;
  after: unknown;
  change: Change;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function flatten(value: Json | null | undefined, prefix = "", out = new Map<string, unknown>()): Map<string, unknown> {
  for (const [key, v] of Object.entries(value ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isObject(v) && Object.keys(v).length > 0) flatten(v, path, out);
    else out.set(path, v);
  }
  return out;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Every leaf of before and after, in path order, with what happened to it. */
export function diffRows(before: Json | null | undefined, after: Json | null | undefined): DiffRow[] {
  const old = flatten(before);
  const now = flatten(after);
  const paths = [...new Set([...old.keys(), ...now.keys()])].sort();
  return paths.map((path) => {
    const b = old.get(path);
    const a = now.get(path);
    const change: Change = !old.has(path) ? "added" : !now.has(path) ? "removed" : same(a, b) ? "same" : "changed";
    return { path, before: b, after: a, change };
  });
}

/** A summary value as one line: strings bare, everything else as JSON. */
export function showValue(value: unknown): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Who acted: the name typed at a login, else the user's/key's name when known, else its id. */
export function actorLabel(
  entry: { actor_type: string; actor_id: string | null; actor_name: string | null },
  names: ReadonlyMap<string, string> = new Map(),
): string {
  const who = entry.actor_name ?? (entry.actor_id ? (names.get(entry.actor_id) ?? entry.actor_id) : "—");
  return `${entry.actor_type}:${who}`;
}
