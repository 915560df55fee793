// Who did something, by name: the API records users and API keys by id (names change, ids do
// not); the console shows the name when it can read it (users: system admins; keys: admins).
import { unwrap } from "../api/client";
import { useLoad } from "../components/useLoad";
import { api } from "../session/store";

/** `user:ID` or `key:ID` (or an actor's type and id) → `user:alice`, unchanged when unknown. */
export function subjectLabel(subject: string | null | undefined, names: ReadonlyMap<string, string>): string {
  if (!subject) return "—";
  const at = subject.indexOf(":");
  if (at < 0) return subject;
  const id = subject.slice(at + 1);
  return `${subject.slice(0, at)}:${names.get(id) ?? id}`;
}

async function readable<T>(call: Promise<T[]>): Promise<T[]> {
  return call.catch(() => [] as T[]); // not allowed to list them: ids it is
}

/** Names of the users and API keys the caller may list, by id. */
export function useSubjectNames(): ReadonlyMap<string, string> {
  const loaded = useLoad(async () => {
    const [users, keys] = await Promise.all([readable(unwrap(api.GET("/api/v1/users"))), readable(unwrap(api.GET("/api/v1/api-keys")))]);
    return new Map<string, string>([...users.map((u): [string, string] => [u.id, u.username]), ...keys.map((k): [string, string] => [k.id, k.name])]);
  }, []);
  return loaded.data ?? EMPTY;
}

const EMPTY: ReadonlyMap<string, string> = new Map();
