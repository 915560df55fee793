// Runtime configuration in the console: what an item's source allows, and the write-only
// credentials (header and env values, API keys) as form lists.
import type { LiveSetting } from "../api/types";

export type Scope = "environment" | "shared" | "workspace";

/** Environment / cadenza.toml items are shown, never edited here (the API answers 409). */
export function editable(item: { scope: Scope }, system: boolean): boolean {
  if (item.scope === "environment") return false;
  return item.scope === "workspace" || system;
}

export interface Pair {
  name?: string;
  value?: string;
}

/** Name/value rows → an object; rows without a name are dropped, a repeated name wins last. */
export function pairsToObject(pairs: Pair[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const name = p.name?.trim();
    if (name) out[name] = p.value ?? "";
  }
  return out;
}

/**
 * The credentials to send: undefined keeps the stored values (the API's "omit to keep"),
 * unless the form was told to replace them or there is nothing stored yet.
 */
export function credentials(pairs: Pair[] | undefined, replace: boolean, stored: string[]): Record<string, string> | undefined {
  if (!replace && stored.length > 0) return undefined;
  const out = pairsToObject(pairs);
  return Object.keys(out).length === 0 && stored.length === 0 ? undefined : out;
}

export type SettingKind = "boolean" | "number" | "text";

/** The editor a live setting gets, from its current value. */
export function settingKind(setting: Pick<LiveSetting, "value">): SettingKind {
  if (typeof setting.value === "boolean") return "boolean";
  if (typeof setting.value === "number") return "number";
  return "text";
}

/** A text field's value as the setting's type: numbers parsed, empty → null. */
export function parseSetting(kind: SettingKind, raw: string | number | boolean | null | undefined): string | number | boolean | null {
  if (raw === null || raw === undefined || raw === "") return null;
  if (kind === "boolean") return Boolean(raw);
  if (kind === "number") return typeof raw === "number" ? raw : Number(raw);
  return String(raw);
}
