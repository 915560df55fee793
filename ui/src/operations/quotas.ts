// Usage against limits, as the quotas view shows it; and the edit form ⇄ the API's body.
import type { Limits, QuotasInput, Usage } from "../api/types";

export const LIMIT_KEYS = ["max_running", "starts_per_minute", "tokens_per_day", "tokens_per_month", "cost_per_day", "cost_per_month"] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];

export type Level = "unlimited" | "ok" | "warn" | "full";

export interface UsageRow {
  key: LimitKey;
  used: number;
  limit: number | null;
  /** 0-100, null when unlimited. A limit of 0 is full at once (it freezes the workspace). */
  percent: number | null;
  level: Level;
}

/** At this share of a limit the bar turns to a warning. */
export const WARN_AT = 80;

export function percentOf(used: number, limit: number | null): number | null {
  if (limit === null) return null;
  if (limit <= 0) return 100;
  return Math.min(100, Math.max(0, (used / limit) * 100));
}

export function levelOf(used: number, limit: number | null): Level {
  const percent = percentOf(used, limit);
  if (percent === null || limit === null) return "unlimited";
  if (used >= limit) return "full";
  return percent >= WARN_AT ? "warn" : "ok";
}

function used(usage: Usage, key: LimitKey): number {
  switch (key) {
    case "max_running":
      return usage.running;
    case "starts_per_minute":
      return usage.starts_this_minute;
    case "tokens_per_day":
      return usage.today.tokens;
    case "tokens_per_month":
      return usage.this_month.tokens;
    case "cost_per_day":
      return usage.today.cost;
    case "cost_per_month":
      return usage.this_month.cost;
  }
}

export function usageRows(usage: Usage): UsageRow[] {
  return LIMIT_KEYS.map((key) => {
    const limit = usage.limits[key] ?? null;
    const value = used(usage, key);
    return { key, used: value, limit, percent: percentOf(value, limit), level: levelOf(value, limit) };
  });
}

export const isCost = (key: LimitKey) => key.startsWith("cost_");

/** A number as the view shows it: costs with up to 4 decimals, counts grouped. */
export function formatAmount(key: LimitKey, value: number): string {
  return isCost(key) ? value.toLocaleString(undefined, { maximumFractionDigits: 4 }) : Math.round(value).toLocaleString();
}

/** Form values: a number, or empty for "no limit of its own". */
export type QuotaValues = Partial<Record<LimitKey, number | null>>;

export function toQuotasInput(values: QuotaValues): QuotasInput {
  const body: QuotasInput = {};
  for (const key of LIMIT_KEYS) {
    const v = values[key];
    body[key] = v === undefined || v === null || Number.isNaN(v) ? null : v;
  }
  return body;
}

export function toQuotaValues(own: Limits): QuotaValues {
  return Object.fromEntries(LIMIT_KEYS.map((k) => [k, own[k] ?? null])) as QuotaValues;
}
