// The node registry: node kinds as data, built from the backend's catalog (`GET /node-types`).
// Colours, icons and starter configs are the only things the console adds; a type the console
// has never heard of still gets a kind, so a new backend node type shows up without UI changes.
import type { NodeTypeInfo } from "../api/types";
import { DEFAULT_PORT, ERROR_PORT, isJsonObject, type JsonObject } from "./definition";

export type Category = "flow" | "ai" | "integration" | "data" | "human";
export type IconName =
  | "play" | "stop" | "code" | "branch" | "api" | "clock" | "user" | "list" | "loop"
  | "cluster" | "robot" | "message" | "tool" | "task" | "box";

interface Look {
  category: Category;
  color: string;
  icon: IconName;
  starter?: JsonObject;
  /** Fields of the node's output worth suggesting in templates (`json` needs output_schema). */
  outputs?: string[];
}

const LOOKS: Record<string, Look> = {
  start: { category: "flow", color: "#2f9e44", icon: "play" },
  end: { category: "flow", color: "#495057", icon: "stop" },
  condition: {
    category: "flow",
    color: "#e8590c",
    icon: "branch",
    starter: { branches: [{ port: "yes", when: "inputs.flag" }], default: "no" },
  },
  map: {
    category: "flow",
    color: "#1971c2",
    icon: "list",
    starter: { items: "inputs.items", concurrency: 4 },
  },
  loop: {
    category: "flow",
    color: "#1971c2",
    icon: "loop",
    starter: { until: "iteration >= 2", max_iterations: 3 },
  },
  subprocess: { category: "flow", color: "#0c8599", icon: "cluster", starter: { process: "" } },
  wait: { category: "flow", color: "#868e96", icon: "clock", starter: { duration: "1s" } },
  llm: {
    category: "ai",
    color: "#7048e8",
    icon: "message",
    starter: { prompt: "" },
    outputs: ["text", "json"],
  },
  agent: {
    category: "ai",
    color: "#9c36b5",
    icon: "robot",
    starter: { instructions: "" },
    outputs: ["text", "json"],
  },
  tool: { category: "integration", color: "#c2255c", icon: "tool", starter: { server: "", tool: "" } },
  http: {
    category: "integration",
    color: "#d6336c",
    icon: "api",
    starter: { method: "GET", url: "" },
    outputs: ["status", "body", "headers"],
  },
  task: { category: "integration", color: "#5c940d", icon: "task", starter: {} },
  transform: { category: "data", color: "#0b7285", icon: "code", starter: { output: "" } },
  approval: {
    category: "human",
    color: "#f08c00",
    icon: "user",
    starter: { title: "Approve?" },
    outputs: ["decision", "comment"],
  },
};

const FALLBACK: Look = { category: "integration", color: "#5f3dc4", icon: "box" };
export const CATEGORIES: readonly Category[] = ["flow", "ai", "integration", "data", "human"];

export interface NodeKind {
  name: string;
  info: NodeTypeInfo;
  category: Category;
  color: string;
  icon: IconName;
  /** False for a type the catalog did not list (a definition may name one). */
  known: boolean;
}

export interface NodeRegistry {
  kinds: readonly NodeKind[];
  get(type: string): NodeKind;
  /** The ports edges may leave from, given the node's config (condition ports come from it). */
  ports(type: string, config: JsonObject | undefined): string[];
  /** The port a plain `from: node` edge means. */
  defaultPort(type: string, config: JsonObject | undefined): string;
  hasInput(type: string): boolean;
  hasBody(type: string): boolean;
  /** Template paths of a node's output: `output`, then known fields such as `output.text`. */
  outputPaths(type: string, config: JsonObject | undefined): string[];
  /** The config of a freshly dropped node. */
  starterConfig(type: string): JsonObject;
  palette(): { category: Category; kinds: NodeKind[] }[];
}

function unknownInfo(name: string): NodeTypeInfo {
  return {
    name,
    type_version: 1,
    description: "",
    config_schema: { type: "object" },
    ports: [DEFAULT_PORT],
    dynamic_ports: false,
    has_body: false,
    execution: "worker",
    retryable: true,
  };
}

function kindOf(info: NodeTypeInfo, known: boolean): NodeKind {
  const look = LOOKS[info.name] ?? FALLBACK;
  return { name: info.name, info, category: look.category, color: look.color, icon: look.icon, known };
}

function branchPorts(config: JsonObject | undefined): string[] {
  const branches = config?.["branches"];
  const ports: string[] = [];
  for (const branch of Array.isArray(branches) ? branches : []) {
    const port = isJsonObject(branch) ? branch["port"] : undefined;
    if (typeof port === "string" && port && !ports.includes(port)) ports.push(port);
  }
  const fallback = config?.["default"];
  if (typeof fallback === "string" && fallback && !ports.includes(fallback)) ports.push(fallback);
  return ports;
}

export function createNodeRegistry(catalog: readonly NodeTypeInfo[]): NodeRegistry {
  const byName = new Map(catalog.map((info) => [info.name, kindOf(info, true)]));
  const get = (type: string): NodeKind => byName.get(type) ?? kindOf(unknownInfo(type), false);

  return {
    kinds: [...byName.values()],
    get,
    ports(type, config) {
      if (type === "end") return []; // the backend refuses edges leaving an end node
      const { info } = get(type);
      const ports = info.dynamic_ports ? branchPorts(config) : [...info.ports];
      // Mirrors the backend: every node the engine does not decide inline may fail.
      if (info.execution !== "inline" && !ports.includes(ERROR_PORT)) ports.push(ERROR_PORT);
      return ports;
    },
    defaultPort(type, config) {
      const fallback = config?.["default"];
      return get(type).info.dynamic_ports && typeof fallback === "string" ? fallback : DEFAULT_PORT;
    },
    hasInput: (type) => type !== "start",
    hasBody: (type) => get(type).info.has_body,
    outputPaths(type, config) {
      const fields = (LOOKS[type]?.outputs ?? []).filter(
        (f) => f !== "json" || isJsonObject(config?.["output_schema"]),
      );
      return ["output", ...fields.map((f) => `output.${f}`)];
    },
    starterConfig(type) {
      const look = LOOKS[type];
      if (look?.starter) return structuredClone(look.starter);
      return {};
    },
    palette() {
      return CATEGORIES.map((category) => ({
        category,
        kinds: [...byName.values()].filter((k) => k.category === category),
      })).filter((group) => group.kinds.length > 0);
    },
  };
}
