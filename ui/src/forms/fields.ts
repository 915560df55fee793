// JSON Schema → form fields. Covers what node configs and process inputs use (object, string,
// number, integer, boolean, enum, array of strings, array of objects, nested objects, scalar
// unions like durations); anything else becomes a JSON editor so no value is ever unreachable.
import { isJsonObject, type Json, type JsonObject } from "../designer/definition";

export type FieldKind =
  | "string"
  | "text"
  | "number"
  | "integer"
  | "boolean"
  | "enum"
  | "string-list"
  | "object"
  | "object-list"
  | "scalar"
  | "json";

export type Scalar = string | number | boolean;

export interface FieldSpec {
  key: string;
  /** Dotted path from the form root, e.g. `retry.max_attempts` or `branches[].port`. */
  path: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  /** enum values; for `scalar`, the constants it accepts besides free text */
  options?: Scalar[];
  /** object: its fields; object-list: the fields of one item */
  fields?: FieldSpec[];
  minimum?: number;
  maximum?: number;
  /** scalar: numbers typed as digits are stored as numbers */
  numeric?: boolean;
  /** json: the value must be an object / an array */
  shape?: "object" | "array";
  /** string/text: may hold `{{ }}` templates (node configs) or is a bare expression */
  variables?: "template" | "expression";
  default?: Json;
}

export interface FieldOptions {
  /** Strings are templates (node config) rather than plain values (process inputs). */
  templates?: boolean;
  /** Keys not to render (a container's body lives on the canvas). */
  omit?: readonly string[];
}

const MULTILINE = new Set(["prompt", "system", "instructions", "description", "body", "input", "until"]);
const SCALAR_TYPES = new Set(["string", "number", "integer"]);
// Names, not text: a condition's port names are matched against edges, never rendered.
const NAMES = new Set(["port", "default"]);

function typesOf(schema: JsonObject): string[] {
  const t = schema["type"];
  if (typeof t === "string") return [t];
  return Array.isArray(t) ? t.filter((x): x is string => typeof x === "string") : [];
}

function isScalar(value: Json | undefined): value is Scalar {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function variants(schema: JsonObject): JsonObject[] | null {
  const list = schema["oneOf"] ?? schema["anyOf"];
  return Array.isArray(list) ? list.filter(isJsonObject) : null;
}

/** A union of strings, numbers and constants (a duration, `1 | "latest"`): one text box. */
function scalarUnion(schema: JsonObject): { numeric: boolean; options: Scalar[] } | null {
  const types = typesOf(schema);
  const parts: JsonObject[] | null =
    variants(schema) ?? (types.length > 1 ? types.map((type): JsonObject => ({ type })) : null);
  if (!parts || parts.length === 0) return null;
  let numeric = false;
  const options: Scalar[] = [];
  for (const part of parts) {
    const [type, ...more] = typesOf(part);
    if (isScalar(part["const"])) options.push(part["const"]);
    else if (type && more.length === 0 && SCALAR_TYPES.has(type)) numeric ||= type !== "string";
    else return null;
  }
  return { numeric, options };
}

function field(key: string, path: string, schema: JsonObject, required: boolean, opts: FieldOptions): FieldSpec {
  const description = typeof schema["description"] === "string" ? schema["description"] : undefined;
  const base: FieldSpec = { key, path, kind: "json", required, description };
  if (schema["default"] !== undefined) base.default = schema["default"];
  const bounds = {
    ...(typeof schema["minimum"] === "number" ? { minimum: schema["minimum"] } : {}),
    ...(typeof schema["maximum"] === "number" ? { maximum: schema["maximum"] } : {}),
  };
  const choices = Array.isArray(schema["enum"]) ? schema["enum"].filter(isScalar) : null;
  if (choices && choices.length > 0) return { ...base, kind: "enum", options: choices };
  if (isScalar(schema["const"])) return { ...base, kind: "enum", options: [schema["const"]] };
  const types = typesOf(schema);
  if (types.length === 1) {
    const type = types[0];
    if (type === "string") {
      const expression = description?.includes("expression") ?? false;
      const variables = opts.templates && !NAMES.has(key) ? (expression ? "expression" : "template") : undefined;
      const kind = MULTILINE.has(key) ? "text" : "string";
      return { ...base, kind, ...(variables ? { variables } : {}) };
    }
    if (type === "number" || type === "integer") return { ...base, kind: type, ...bounds };
    if (type === "boolean") return { ...base, kind: "boolean" };
    if (type === "array") {
      const items = isJsonObject(schema["items"]) ? schema["items"] : {};
      const [itemType, ...more] = typesOf(items);
      if (itemType === "string" && more.length === 0 && !items["enum"]) return { ...base, kind: "string-list" };
      if (itemType === "object" && isJsonObject(items["properties"])) {
        return { ...base, kind: "object-list", fields: fieldsOf(items, `${path}[]`, opts) };
      }
      return { ...base, shape: "array" };
    }
    if (type === "object") {
      const props = schema["properties"];
      if (isJsonObject(props) && Object.keys(props).length > 0) {
        return { ...base, kind: "object", fields: fieldsOf(schema, path, opts) };
      }
      return { ...base, shape: "object" };
    }
  }
  const union = scalarUnion(schema);
  if (union) return { ...base, kind: "scalar", numeric: union.numeric, options: union.options };
  return base;
}

function fieldsOf(schema: JsonObject, prefix: string, opts: FieldOptions): FieldSpec[] {
  const props = isJsonObject(schema["properties"]) ? schema["properties"] : {};
  const required = new Set(
    Array.isArray(schema["required"]) ? schema["required"].filter((r) => typeof r === "string") : [],
  );
  const omit = prefix === "" ? new Set(opts.omit ?? []) : new Set<string>();
  return Object.entries(props)
    .filter(([key]) => !omit.has(key))
    .map(([key, sub]) =>
      field(key, prefix ? `${prefix}.${key}` : key, isJsonObject(sub) ? sub : {}, required.has(key), opts),
    );
}

/** The fields of an object schema, required ones first, then in schema order. */
export function schemaToFields(schema: Json | undefined, opts: FieldOptions = {}): FieldSpec[] {
  if (!isJsonObject(schema)) return [];
  const fields = fieldsOf(schema, "", opts);
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}
