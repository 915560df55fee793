// Load data for a view: loading, error (as problem details) and reload, without a cache library.
import { useCallback, useEffect, useRef, useState } from "react";
import { problemOf, type Problem } from "../api/problem";

export interface Loaded<T> {
  data: T | undefined;
  error: Problem | null;
  loading: boolean;
  reload(): Promise<void>;
  /** Replace the data locally (after an action that returned the new value). */
  set(data: T): void;
}

export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Problem | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const run = useCallback(load, deps);

  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await run();
      if (mine === generation.current) {
        setData(value);
        setError(null);
      }
    } catch (failure) {
      if (mine === generation.current) setError(problemOf(failure));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, [run]);

  useEffect(() => {
    void reload();
  }, [reload]);

  return { data, error, loading, reload, set: setData };
}
