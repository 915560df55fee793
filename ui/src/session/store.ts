// Who is signed in, in which workspace and language; persisted in localStorage. Not the graph.
import { create } from "zustand";
import { createJSONStorage, persist } from "zustand/middleware";
import { createApi, type Api, type SessionPort } from "../api/client";
import type { Me, TokenPair } from "../api/types";

export type Lang = "en" | "zh-CN";

const STORAGE_KEY = "cadenza.session";
const REFRESH_LOCK = "cadenza.session.refresh";

interface SessionState {
  accessToken: string | null;
  refreshToken: string | null;
  workspace: string | null;
  lang: Lang;
  me: Me | null;
  signIn(tokens: TokenPair): void;
  setTokens(tokens: TokenPair): void;
  setMe(me: Me): void;
  setWorkspace(id: string): void;
  setLang(lang: Lang): void;
  signOut(): void;
}

function initialLang(): Lang {
  if (typeof navigator !== "undefined" && navigator.language?.toLowerCase().startsWith("zh")) {
    return "zh-CN";
  }
  return "en";
}

export const useSession = create<SessionState>()(
  persist(
    (set) => ({
      accessToken: null,
      refreshToken: null,
      workspace: null,
      lang: initialLang(),
      me: null,
      signIn: (tokens) => set({ accessToken: tokens.access_token, refreshToken: tokens.refresh_token }),
      setTokens: (tokens) =>
        set({ accessToken: tokens.access_token, refreshToken: tokens.refresh_token }),
      setMe: (me) =>
        set((s) => {
          const known = me.workspaces.some((w) => w.id === s.workspace);
          return { me, workspace: known ? s.workspace : (me.workspaces[0]?.id ?? null) };
        }),
      setWorkspace: (workspace) => set({ workspace }),
      setLang: (lang) => set({ lang }),
      signOut: () => set({ accessToken: null, refreshToken: null, me: null }),
    }),
    {
      name: STORAGE_KEY,
      storage: createJSONStorage(() => localStorage),
      partialize: (s) => ({
        accessToken: s.accessToken,
        refreshToken: s.refreshToken,
        workspace: s.workspace,
        lang: s.lang,
      }),
    },
  ),
);

/**
 * Take the tokens the tabs share (localStorage) when another tab stored newer ones: each refresh
 * replaces the refresh token, and presenting a replaced one ends the session. Only the tokens:
 * each tab keeps its own workspace. A tab that signed out stores none; this one keeps its own
 * until the server refuses them.
 */
export function adoptStoredTokens(): void {
  let stored: { accessToken?: unknown; refreshToken?: unknown } | undefined;
  try {
    stored = (JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as { state?: typeof stored } | null)?.state;
  } catch {
    return;
  }
  const access = typeof stored?.accessToken === "string" ? stored.accessToken : null;
  const refresh = typeof stored?.refreshToken === "string" ? stored.refreshToken : null;
  const s = useSession.getState();
  if (refresh && (refresh !== s.refreshToken || access !== s.accessToken)) {
    useSession.setState({ accessToken: access, refreshToken: refresh });
  }
}

if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key === STORAGE_KEY) adoptStoredTokens();
  });
}

/** One refresh at a time across the console's tabs (Web Locks; without them, the server's grace). */
function exclusive(task: () => Promise<boolean>): Promise<boolean> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  return locks ? (locks.request(REFRESH_LOCK, task) as Promise<boolean>) : task();
}

const port: SessionPort = {
  accessToken: () => useSession.getState().accessToken,
  refreshToken: () => useSession.getState().refreshToken,
  workspace: () => useSession.getState().workspace,
  tokensRefreshed: (tokens) => useSession.getState().setTokens(tokens),
  expired: () => useSession.getState().signOut(),
  reload: adoptStoredTokens,
  exclusive,
};

/** The one API client of the console; it reads the session lazily on each call. */
export const api: Api = createApi(port);

/** The SSE URL of a stream route: EventSource cannot send headers, so auth goes in the query. */
export function streamUrl(path: string, params: Record<string, string>): string {
  const s = useSession.getState();
  const query = new URLSearchParams(params);
  if (s.accessToken) query.set("access_token", s.accessToken);
  if (s.workspace) query.set("workspace", s.workspace);
  return `${path}?${query.toString()}`;
}
