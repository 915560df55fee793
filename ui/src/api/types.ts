// Named shapes of the API, derived from the generated `paths` (never written by hand): when the
// OpenAPI document changes, `npm run gen:api` updates schema.d.ts and these follow.
import type { paths } from "./schema";

type Method = "get" | "post" | "put" | "patch" | "delete";
type JsonContent<R> = R extends { content: { "application/json": infer T } } ? T : never;
type Responses<P extends keyof paths, M extends Method> = paths[P][M] extends {
  responses: infer R;
}
  ? R
  : never;

/** The JSON body of the success (200 or 201) response of `M P`. */
export type Ok<P extends keyof paths, M extends Method> =
  Responses<P, M> extends { 200: infer R }
    ? JsonContent<R>
    : Responses<P, M> extends { 201: infer R }
      ? JsonContent<R>
      : never;

/** The JSON request body of `M P`. */
export type Body<P extends keyof paths, M extends Method> = paths[P][M] extends {
  requestBody?: { content: { "application/json": infer B } };
}
  ? B
  : never;

export type Query<P extends keyof paths, M extends Method> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;

export type TokenPair = Ok<"/api/v1/auth/login", "post">;
export type Me = Ok<"/api/v1/me", "get">;
export type Membership = Me["workspaces"][number];
export type NodeTypeInfo = Ok<"/api/v1/node-types", "get">[number];
export type ValidationResult = Ok<"/api/v1/processes/definitions/validate", "post">;
export type ValidationProblem = ValidationResult["problems"][number];
/** A version without its document (lists, publish). */
export type VersionInfo = Ok<"/api/v1/processes/definitions/{process_id}/versions", "get">[number];
/** A version with its document. */
export type VersionDetail = Ok<"/api/v1/processes/definitions/{process_id}/versions/{version}", "get">;
/** The latest version of each process of the workspace. */
export type ProcessSummary = Ok<"/api/v1/processes/definitions", "get">[number];
export type DiffResult = Ok<"/api/v1/processes/definitions/{process_id}/diff", "get">;
export type InstancePage = Ok<"/api/v1/processes/instances", "get">;
export type InstanceSummary = InstancePage["items"][number];
export type InstanceQuery = Query<"/api/v1/processes/instances", "get">;
export type InstanceDetail = Ok<"/api/v1/processes/instances/{instance_id}", "get">;
export type TaskInfo = InstanceDetail["tasks"][number];
export type EventItem = Ok<"/api/v1/processes/instances/{instance_id}/events", "get">[number];
/** An approval task waiting for a decision; its `detail` holds title, description, timeout_at. */
export type Approval = Ok<"/api/v1/execution/approvals", "get">[number];
export type MetricsSeries = Ok<"/api/v1/metrics/series", "get">;
export type Agent = Ok<"/api/v1/agents", "get">[number];
export type AgentInput = Body<"/api/v1/agents/register", "post">;
export type AgentPatch = Body<"/api/v1/agents/{agent_id}", "patch">;
export type McpServer = Ok<"/api/v1/mcp-servers", "get">[number];
export type McpTool = Ok<"/api/v1/mcp-servers/{name}/tools", "get">[number];
export type Provider = Ok<"/api/v1/providers", "get">[number];
export type ProviderTest = Ok<"/api/v1/providers/{name}/test", "post">;
export type User = Ok<"/api/v1/users", "get">[number];
export type UserInput = Body<"/api/v1/users", "post">;
export type ApiKey = Ok<"/api/v1/api-keys", "get">[number];
export type ApiKeyInput = Body<"/api/v1/api-keys", "post">;
export type ApiKeyCreated = Ok<"/api/v1/api-keys", "post">;
export type Secret = Ok<"/api/v1/workspaces/{workspace_id}/secrets", "get">[number];
export type SecretInput = Body<"/api/v1/workspaces/{workspace_id}/secrets/{name}", "put">;
export type Role = ApiKeyInput["role"];
export type Workspace = Ok<"/api/v1/workspaces", "get">[number];
export type WorkspaceInput = Body<"/api/v1/workspaces", "post">;
export type Member = Ok<"/api/v1/workspaces/{workspace_id}/members", "get">[number];
export type Settings = Ok<"/api/v1/settings", "get">;
export type AuditPage = Ok<"/api/v1/audit", "get">;
export type AuditEntry = AuditPage["items"][number];
export type AuditQuery = Query<"/api/v1/audit", "get">;
export type Quotas = Ok<"/api/v1/workspaces/{workspace_id}/quotas", "get">;
export type QuotasInput = Body<"/api/v1/workspaces/{workspace_id}/quotas", "put">;
export type Limits = Quotas["effective"];
export type Usage = Ok<"/api/v1/workspaces/{workspace_id}/usage", "get">;
export type RetentionPolicy = Ok<"/api/v1/workspaces/{workspace_id}/retention", "get">;
export type RetentionInput = Body<"/api/v1/workspaces/{workspace_id}/retention", "put">;
export type LegalHold = Ok<"/api/v1/processes/instances/{instance_id}/legal-hold", "get">;
export type LegalHoldList = Ok<"/api/v1/workspaces/{workspace_id}/legal-holds", "get">;
export type ProviderConfig = Ok<"/api/v1/config/providers", "get">[number];
export type ProviderConfigInput = Body<"/api/v1/config/providers/{provider}", "put">;
export type McpServerConfig = Ok<"/api/v1/config/mcp-servers", "get">[number];
export type McpServerConfigInput = Body<"/api/v1/config/mcp-servers/{server}", "put">;
export type LiveSetting = Ok<"/api/v1/config/settings", "get">[number];
export type Redaction = Ok<"/api/v1/workspaces/{workspace_id}/redaction", "get">;
export type RedactionInput = Body<"/api/v1/workspaces/{workspace_id}/redaction", "put">;
export type Redacted = NonNullable<InstanceDetail["redacted"]>[number];
/** Where a workspace's deletion stands (an active workspace: what a deletion would remove). */
export type Deletion = Ok<"/api/v1/workspaces/{workspace_id}/deletion", "get">;
