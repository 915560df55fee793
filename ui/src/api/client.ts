// The runtime client: openapi-fetch over the generated `paths`, with the session's bearer token
// and workspace header on every call, and one token refresh (shared by concurrent calls) on 401.
// Each refresh replaces the refresh token (the server ends the session when a replaced one comes
// back), so tabs refresh one at a time and a tab first looks for tokens another tab stored.
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
  /** Take the tokens another tab may have stored since (the session store reads localStorage). */
  reload?(): void;
  /** Run `task` while no other tab of the console runs its refresh (a Web Lock). */
  exclusive?(task: () => Promise<boolean>): Promise<boolean>;
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

  /** New tokens, unless another tab already got them after `used` was refused. */
  async function renew(used: string | null): Promise<boolean> {
    session.reload?.();
    const current = session.accessToken();
    if (current && current !== used) return true;
    return refresh();
  }

  return async (request) => {
    const again = request.clone();
    const sent = withAuth(request, session);
    const used = sent.headers.get("Authorization")?.replace(/^Bearer /, "") ?? null;
    const response = await base(sent);
    const path = new URL(request.url).pathname;
    if (response.status !== 401 || AUTH_PATHS.includes(path)) return response;
    const run = session.exclusive ?? ((task: () => Promise<boolean>) => task());
    refreshing ??= run(() => renew(used))
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
