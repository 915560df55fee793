import { describe, expect, it } from "vitest";
import { createApi, unwrap, type SessionPort } from "../src/api/client";
import { ApiError } from "../src/api/problem";

function session(): SessionPort & { access: string; expiredCalls: number } {
  const s = {
    access: "old",
    expiredCalls: 0,
    accessToken: () => s.access,
    refreshToken: () => "refresh-1",
    workspace: () => "ws-1",
    tokensRefreshed: (t: { access_token: string }) => {
      s.access = t.access_token;
    },
    expired: () => {
      s.expiredCalls += 1;
    },
  };
  return s;
}

const json = (status: number, body: unknown, type = "application/json") =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": type } });

describe("API client", () => {
  it("sends the bearer token and the workspace header", async () => {
    const seen: Request[] = [];
    const api = createApi(session(), async (r) => (seen.push(r), json(200, { user: {}, workspaces: [] })), "http://x");
    await unwrap(api.GET("/api/v1/me"));
    expect(seen[0]!.headers.get("Authorization")).toBe("Bearer old");
    expect(seen[0]!.headers.get("X-Workspace")).toBe("ws-1");
  });

  it("refreshes once on 401 and replays the request with its body", async () => {
    const s = session();
    const calls: string[] = [];
    const api = createApi(
      s,
      async (r) => {
        const path = new URL(r.url).pathname;
        calls.push(`${path} ${r.headers.get("Authorization")} ${await r.clone().text()}`);
        if (path === "/api/v1/auth/refresh") {
          return json(200, { access_token: "new", refresh_token: "r2", token_type: "bearer", expires_in: 60 });
        }
        return r.headers.get("Authorization") === "Bearer new" ? json(200, { valid: true, problems: [] }) : json(401, {});
      },
      "http://x",
    );
    const result = await unwrap(api.POST("/api/v1/processes/definitions/validate", { body: { document: { a: 1 } } }));
    expect(result).toEqual({ valid: true, problems: [] });
    expect(calls).toEqual([
      '/api/v1/processes/definitions/validate Bearer old {"document":{"a":1}}',
      '/api/v1/auth/refresh null {"refresh_token":"refresh-1"}',
      '/api/v1/processes/definitions/validate Bearer new {"document":{"a":1}}',
    ]);
  });

  it("signs out when the refresh fails, and reports the problem", async () => {
    const s = session();
    const api = createApi(
      s,
      async () => json(401, { type: "about:blank", title: "Unauthorized", status: 401, detail: "token expired" }, "application/problem+json"),
      "http://x",
    );
    const failure = await unwrap(api.GET("/api/v1/me")).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApiError);
    expect((failure as ApiError).problem).toMatchObject({ title: "Unauthorized", status: 401, detail: "token expired" });
    expect(s.expiredCalls).toBe(1);
  });

  it("takes the tokens another tab stored instead of refreshing with a replaced token", async () => {
    const s = session();
    let stored = { access: "old", refresh: "refresh-1" };
    let current = "refresh-1";
    s.refreshToken = () => current;
    s.reload = () => {
      s.access = stored.access;
      current = stored.refresh;
    };
    const calls: string[] = [];
    const api = createApi(
      s,
      async (r) => {
        const path = new URL(r.url).pathname;
        calls.push(`${path} ${r.headers.get("Authorization")}`);
        if (path === "/api/v1/auth/refresh") throw new Error("no refresh expected");
        return r.headers.get("Authorization") === "Bearer other-tab" ? json(200, { user: {}, workspaces: [] }) : json(401, {});
      },
      "http://x",
    );
    stored = { access: "other-tab", refresh: "refresh-2" }; // another tab refreshed meanwhile
    await unwrap(api.GET("/api/v1/me"));
    expect(calls).toEqual(["/api/v1/me Bearer old", "/api/v1/me Bearer other-tab"]);
    expect(current).toBe("refresh-2");
    expect(s.expiredCalls).toBe(0);
  });

  it("refreshes inside the cross-tab lock, with the newest stored refresh token", async () => {
    const s = session();
    const order: string[] = [];
    let current = "refresh-1";
    s.refreshToken = () => current;
    s.reload = () => {
      order.push("reload");
      current = "refresh-2"; // stored by another tab, which then let its access token expire
    };
    s.exclusive = async (task) => {
      order.push("lock");
      const done = await task();
      order.push("unlock");
      return done;
    };
    const api = createApi(
      s,
      async (r) => {
        const path = new URL(r.url).pathname;
        if (path === "/api/v1/auth/refresh") {
          order.push(`refresh ${await r.clone().text()}`);
          return json(200, { access_token: "new", refresh_token: "refresh-3", token_type: "bearer", expires_in: 60 });
        }
        return r.headers.get("Authorization") === "Bearer new" ? json(200, { user: {}, workspaces: [] }) : json(401, {});
      },
      "http://x",
    );
    await Promise.all([unwrap(api.GET("/api/v1/me")), unwrap(api.GET("/api/v1/me"))]);
    expect(order).toEqual(["lock", "reload", 'refresh {"refresh_token":"refresh-2"}', "unlock"]);
  });
});
