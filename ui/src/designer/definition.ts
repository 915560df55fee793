// The `cadenza/v1` process definition as the console reads and writes it (DESIGN §4).
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A node without its id: what a canvas node carries (a container's body lives on the canvas). */
export interface NodeSpec {
  type: string;
  config?: JsonObject;
  [key: string]: Json | undefined;
}

export interface DefNode extends NodeSpec {
  id: string;
}

export interface DefEdge {
  from: string;
  to: string;
}

export interface Position {
  x: number;
  y: number;
}

export type Layout = Record<string, Position>;

export interface DefGraph {
  nodes: DefNode[];
  edges?: DefEdge[];
}

/** Everything in a definition but its graph and layout: what the designer keeps beside the canvas. */
export interface DefinitionMeta {
  schema: string;
  id: string;
  name: string;
  [key: string]: unknown;
}

export interface Definition extends DefinitionMeta {
  nodes: DefNode[];
  edges?: DefEdge[];
  layout?: Layout;
}

export const SCHEMA_ID = "cadenza/v1";
export const DEFAULT_PORT = "out";
export const ERROR_PORT = "error";

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The body graph of a map/loop node, when its config has one. */
export function bodyOf(node: DefNode): DefGraph | null {
  const body = node.config?.["body"];
  if (!isJsonObject(body) || !Array.isArray(body["nodes"])) return null;
  return body as unknown as DefGraph;
}

/** Split `a.port` into node id and port (null when the edge leaves from the default port). */
export function parseFrom(from: string): { node: string; port: string | null } {
  const dot = from.indexOf(".");
  return dot < 0 ? { node: from, port: null } : { node: from.slice(0, dot), port: from.slice(dot + 1) };
}

/** A new, empty definition. */
export function emptyDefinition(id = "new-process", name = "New process"): Definition {
  return {
    schema: SCHEMA_ID,
    id,
    name,
    inputs: { type: "object", properties: {} },
    outputs: {},
    nodes: [],
    edges: [],
  };
}
