// The runtime client: openapi-fetch over the generated `paths`, with the session's bearer token
// and workspace header on every call, and one token refresh (shared by concurrent calls) on 401.
import createClient, { type Client } from "openapi-fetch";
import { ApiError, toProblem } from "./problem";
import type { paths } from "./schema";
import type { TokenPair } from "./types";

export type Api = Client<paths>;

/** What the client needs from the session (the zustand session store implements it). */
export interface SessionPort {
  accessToken(): string | null;
  refreshToken(): string | null;
  workspace(): string | null;
  tokensRefreshed(tokens: TokenPair): void;
  expired(): void;
}

type Fetch = (request: Request) => Promise<Response>;

const AUTH_PATHS = ["/api/v1/auth/login", "/api/v1/auth/refresh"];

function withAuth(request: Request, session: SessionPort): Request {
  const headers = new Headers(request.headers);
  const token = session.accessToken();
  const workspace = session.workspace();
  if (token && !headers.has("Authorization")) headers.set("Authorization", `Bearer ${token}`);
  if (workspace && !headers.has("X-Workspace")) headers.set("X-Workspace", workspace);
  return new Request(request, { headers });
}

/** A fetch that authenticates requests and retries once after refreshing an expired token. */
export function authFetch(session: SessionPort, base: Fetch, baseUrl: string): Fetch {
  const bare = createClient<paths>({ baseUrl, fetch: base });
  let refreshing: Promise<boolean> | null = null;

  async function refresh(): Promise<boolean> {
    const token = session.refreshToken();
    if (!token) return false;
    const { data, response } = await bare.POST("/api/v1/auth/refresh", {
      body: { refresh_token: token },
    });
    if (!response.ok || !data) return false;
    session.tokensRefreshed(data);
    return true;
  }

  return async (request) => {
    const again = request.clone();
    const response = await base(withAuth(request, session));
    const path = new URL(request.url).pathname;
    if (response.status !== 401 || AUTH_PATHS.includes(path)) return response;
    refreshing ??= refresh()
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
    if (await refreshing) return base(withAuth(again, session));
    session.expired();
    return response;
  };
}

export function createApi(session: SessionPort, base?: Fetch, baseUrl = ""): Api {
  const origin = baseUrl || (typeof window === "undefined" ? "http://localhost" : window.location.origin);
  const fetcher = base ?? ((request: Request) => globalThis.fetch(request));
  return createClient<paths>({ baseUrl: origin, fetch: authFetch(session, fetcher, origin) });
}

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a call, or an ApiError carrying the problem details. */
export async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await call;
  } catch (error) {
    throw new ApiError(toProblem(undefined, 0, error instanceof Error ? error.message : ""));
  }
  const { data, error, response } = result;
  if (!response.ok || error !== undefined) {
    throw new ApiError(toProblem(error, response.status, response.statusText));
  }
  return data as T;
}
