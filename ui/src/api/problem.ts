/** An API failure as RFC 9457 problem details (`application/problem+json`). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: unknown[];
}

export class ApiError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = "ApiError";
    this.problem = problem;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Read whatever an error body is (problem JSON, FastAPI `{detail}`, text) as a Problem. */
export function toProblem(body: unknown, status: number, statusText = ""): Problem {
  const fallback = statusText || (status === 0 ? "Network error" : `HTTP ${status}`);
  if (isRecord(body)) {
    const detail = body["detail"];
    return {
      type: typeof body["type"] === "string" ? body["type"] : "about:blank",
      title: typeof body["title"] === "string" ? body["title"] : fallback,
      status: typeof body["status"] === "number" ? body["status"] : status,
      detail: typeof detail === "string" ? detail : detail === undefined ? undefined : JSON.stringify(detail),
      errors: Array.isArray(body["errors"]) ? body["errors"] : undefined,
    };
  }
  const text = typeof body === "string" && body.trim() ? body.trim().slice(0, 500) : undefined;
  return { type: "about:blank", title: fallback, status, detail: text };
}

/** A Problem for anything thrown (ApiError, network TypeError, a bug). */
export function problemOf(error: unknown): Problem {
  if (error instanceof ApiError) return error.problem;
  const message = error instanceof Error ? error.message : String(error);
  return { type: "about:blank", title: "Error", status: 0, detail: message };
}
