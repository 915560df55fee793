// Put an API problem's messages on the form fields they are about: a 422's `errors` carry a
// `path` (`body.max_running`), a domain error only names the field in its detail text.
import type { Problem } from "../api/problem";

function pathOf(error: unknown): { path: string; message: string } | null {
  if (typeof error !== "object" || error === null) return null;
  const { path, message } = error as { path?: unknown; message?: unknown };
  return typeof path === "string" && typeof message === "string" ? { path, message } : null;
}

/** Messages per field name; what names no known field is returned under "" (show it above). */
export function fieldErrors(problem: Problem, fields: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const add = (field: string, message: string) => (out[field] ??= []).push(message);
  const listed = (problem.errors ?? []).map(pathOf).filter((e) => e !== null);
  for (const { path, message } of listed) {
    const field = fields.find((f) => path.split(".").includes(f));
    add(field ?? "", field ? message : `${path}: ${message}`);
  }
  if (listed.length === 0) {
    const detail = problem.detail ?? problem.title;
    const named = fields
      .map((f) => ({ f, at: detail.search(new RegExp(`\\b${f}\\b`)) }))
      .filter((x) => x.at >= 0)
      .sort((a, b) => a.at - b.at)[0];
    add(named?.f ?? "", detail);
  }
  return out;
}
