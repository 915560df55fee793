// The console's words in English and 简体中文; antd and dayjs switch with them.
import { useCallback } from "react";
import { useSession, type Lang } from "../session/store";
import { en, type MessageKey } from "./en";
import { zh } from "./zh";

export type { MessageKey };

const DICTIONARIES: Record<Lang, Record<MessageKey, string>> = { en, "zh-CN": zh };

export function translate(lang: Lang, key: MessageKey, vars?: Record<string, string | number>): string {
  const text = DICTIONARIES[lang][key] ?? en[key];
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
}

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

export function useT(): Translate {
  const lang = useSession((s) => s.lang);
  return useCallback<Translate>((key, vars) => translate(lang, key, vars), [lang]);
}

export const LANGUAGES: { value: Lang; label: string }[] = [
  { value: "en", label: "English" },
  { value: "zh-CN", label: "简体中文" },
];
