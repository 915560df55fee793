// Import/export of definitions as YAML (JSON is YAML too).
import { parse, stringify } from "yaml";
import { isJsonObject, type Definition } from "./definition";

export type Parsed = { doc: Definition } | { error: string };

export function parseDefinition(text: string): Parsed {
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
  if (!isJsonObject(value)) return { error: "expected a mapping with schema, id, name, nodes and edges" };
  if (!Array.isArray(value["nodes"])) return { error: "expected `nodes`: a list of nodes" };
  if (value["edges"] !== undefined && !Array.isArray(value["edges"])) return { error: "expected `edges`: a list of edges" };
  const doc = value as unknown as Definition;
  return { doc: { ...doc, schema: doc.schema ?? "cadenza/v1", id: String(doc.id ?? ""), name: String(doc.name ?? "") } };
}

export function toYaml(doc: Definition): string {
  return stringify(doc, { lineWidth: 100, aliasDuplicateObjects: false });
}

/** Offer `text` as a file download (browser only). */
export function download(name: string, text: string, type = "application/yaml"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
