// The status vocabularies of the API: the backend's enums (cadenza.domain), each one named
// component of the OpenAPI document. The types come from the generated schema, never by hand; the
// runtime lists below are checked against them, so a status added on the backend fails
// `npm run typecheck` here until the console lists it (and tests/statusEnums.test.ts checks the
// order against openapi.json).
import type { components } from "./schema";

type Schemas = components["schemas"];
export type InstanceStatus = Schemas["InstanceStatus"];
export type TaskStatus = Schemas["TaskStatus"];
export type DefinitionStatus = Schemas["DefinitionStatus"];
export type AgentStatus = Schemas["AgentStatus"];

type Missing<T extends string, A extends readonly string[]> = Exclude<T, A[number]>;

/**
 * `values` as given; the call type-checks only when the list holds every member of `T` (a member
 * of `T` left out shows up as `missing` in the error) and nothing else.
 */
export function every<T extends string>() {
  return <const A extends readonly T[]>(
    values: A & ([Missing<T, A>] extends [never] ? unknown : { missing: Missing<T, A> }),
  ): A => values;
}

export const INSTANCE_STATUSES = every<InstanceStatus>()(["running", "completed", "failed", "cancelled"]);
export const TASK_STATUSES = every<TaskStatus>()([
  "scheduled",
  "running",
  "waiting",
  "completed",
  "failed",
  "skipped",
  "cancelled",
]);
export const DEFINITION_STATUSES = every<DefinitionStatus>()(["draft", "published", "archived"]);
export const AGENT_STATUSES = every<AgentStatus>()(["unknown", "healthy", "unhealthy", "draining"]);

/** Whether `value` (from a URL, a stream payload...) is one of `values`. */
export function isOneOf<T extends string>(values: readonly T[], value: string | null | undefined): value is T {
  return value !== null && value !== undefined && (values as readonly string[]).includes(value);
}
