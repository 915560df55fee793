// A validation problem's `errors` (paths like `body.custom.0.pattern`) as antd form field
// entries: ["custom", 0, "pattern"]. What names no field of the form stays for an alert.
import type { Problem } from "../api/problem";

export type FieldPath = (string | number)[];

export interface FormFieldError {
  name: FieldPath;
  errors: string[];
}

export function toFieldPath(path: string): FieldPath {
  const parts = path.split(".");
  if (parts[0] === "body") parts.shift();
  return parts.map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

/** Field errors for the form (only paths whose first part `known` accepts), grouped by path. */
export function formFieldErrors(problem: Problem, known: (first: string) => boolean): FormFieldError[] {
  const byPath = new Map<string, FormFieldError>();
  for (const error of problem.errors ?? []) {
    if (typeof error !== "object" || error === null) continue;
    const { path, message } = error as { path?: unknown; message?: unknown };
    if (typeof path !== "string" || typeof message !== "string") continue;
    const name = toFieldPath(path);
    if (name.length === 0 || !known(String(name[0]))) continue;
    const key = name.join(".");
    const found = byPath.get(key) ?? { name, errors: [] };
    found.errors.push(message);
    byPath.set(key, found);
  }
  return [...byPath.values()];
}
