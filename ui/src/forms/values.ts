// Config ⇄ form values for the fields of `fields.ts`. Form values are what antd inputs hold
// (JSON and scalar unions as text); config is the JSON the definition stores. Empty optional
// values are left out of the config, and keys without a field are kept as they were.
import { isJsonObject, type Json, type JsonObject } from "../designer/definition";
import type { FieldSpec, Scalar } from "./fields";

export type FieldValue = string | number | boolean | null | undefined | string[] | FormValues | FormValues[];
export interface FormValues {
  [key: string]: FieldValue;
}

export interface FieldError {
  path: string;
  message: string;
}

function isScalar(value: unknown): value is Scalar {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function toValue(field: FieldSpec, value: Json | undefined): FieldValue {
  switch (field.kind) {
    case "string":
    case "text":
      return typeof value === "string" ? value : value === undefined || value === null ? "" : JSON.stringify(value);
    case "number":
    case "integer":
      return typeof value === "number" ? value : null;
    case "boolean":
      return typeof value === "boolean" ? value : undefined;
    case "enum":
      return isScalar(value) ? value : undefined;
    case "string-list":
      return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
    case "object":
      return configToValues(field.fields ?? [], isJsonObject(value) ? value : {});
    case "object-list":
      return Array.isArray(value)
        ? value.map((item) => configToValues(field.fields ?? [], isJsonObject(item) ? item : {}))
        : [];
    case "scalar":
      return value === undefined || value === null ? "" : String(value);
    case "json":
      return value === undefined ? "" : JSON.stringify(value, null, 2);
  }
}

/** The form values showing `config`. */
export function configToValues(fields: readonly FieldSpec[], config: JsonObject | undefined): FormValues {
  const values: FormValues = {};
  for (const field of fields) values[field.key] = toValue(field, config?.[field.key]);
  return values;
}

type Parsed = { value: Json | undefined } | { error: string };

function parseScalar(field: FieldSpec, text: string): Json | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const constant = field.options?.find((o) => String(o) === trimmed);
  if (constant !== undefined) return constant;
  if (field.numeric && /^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  return text;
}

function parseJson(field: FieldSpec, text: string): Parsed {
  if (text.trim() === "") return { value: undefined };
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch (error) {
    return { error: `invalid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (field.shape === "object" && !isJsonObject(value)) return { error: "expected a JSON object" };
  if (field.shape === "array" && !Array.isArray(value)) return { error: "expected a JSON array" };
  return { value };
}

function parseField(field: FieldSpec, raw: FieldValue, base: Json | undefined, path: string, errors: FieldError[]): Parsed {
  const keepEmpty = (value: Json, empty: boolean): Parsed => ({ value: empty && !field.required ? undefined : value });
  switch (field.kind) {
    case "string":
    case "text":
      return { value: typeof raw === "string" && raw !== "" ? raw : undefined };
    case "number":
    case "integer":
      return { value: typeof raw === "number" && Number.isFinite(raw) ? raw : undefined };
    case "boolean":
      return { value: typeof raw === "boolean" ? raw : undefined };
    case "enum":
      return { value: isScalar(raw) && raw !== "" ? raw : undefined };
    case "string-list": {
      const list = Array.isArray(raw) ? raw.filter((v): v is string => typeof v === "string" && v !== "") : [];
      return keepEmpty(list, list.length === 0);
    }
    case "object": {
      const values = isJsonObject(raw) ? (raw as FormValues) : {};
      const value = collect(field.fields ?? [], values, isJsonObject(base) ? base : {}, path, errors);
      return keepEmpty(value, Object.keys(value).length === 0);
    }
    case "object-list": {
      const items = Array.isArray(raw) ? raw : [];
      const list = items.map((item, i) =>
        collect(field.fields ?? [], isJsonObject(item) ? (item as FormValues) : {}, {}, `${path}[${i}]`, errors),
      );
      return keepEmpty(list, list.length === 0);
    }
    case "scalar":
      return { value: typeof raw === "string" ? parseScalar(field, raw) : isScalar(raw) ? raw : undefined };
    case "json":
      return typeof raw === "string" ? parseJson(field, raw) : { value: undefined };
  }
}

function collect(fields: readonly FieldSpec[], values: FormValues, base: JsonObject, prefix: string, errors: FieldError[]): JsonObject {
  const config: JsonObject = { ...base };
  for (const field of fields) {
    const path = prefix ? `${prefix}.${field.key}` : field.key;
    delete config[field.key];
    const parsed = parseField(field, values[field.key], base[field.key], path, errors);
    if ("error" in parsed) {
      errors.push({ path, message: parsed.error });
      const kept = base[field.key];
      if (kept !== undefined) config[field.key] = kept;
    } else if (parsed.value !== undefined) {
      config[field.key] = parsed.value;
    }
  }
  return config;
}

/**
 * The config the form values stand for, built over `base` (keys without a field survive). A field
 * that does not parse keeps its previous value and is reported in `errors`.
 */
export function valuesToConfig(
  fields: readonly FieldSpec[],
  values: FormValues,
  base: JsonObject = {},
): { config: JsonObject; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const config = collect(fields, values, base, "", errors);
  return { config, errors };
}
