// The one store of the designer: the graph being edited, as React Flow nodes and edges, plus the
// definition's other fields. The definition is derived from it (convert.ts) when it is needed.
import {
  applyEdgeChanges,
  applyNodeChanges,
  type Connection,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import { create } from "zustand";
import type { VersionInfo } from "../api/types";
import {
  TARGET_HANDLE,
  canvasToDefinition,
  definitionToCanvas,
  edgeId,
  type FlowEdge,
  type FlowNode,
} from "./convert";
import { ERROR_PORT, emptyDefinition, type Definition, type DefinitionMeta, type NodeSpec } from "./definition";
import { CONTAINER_HEADER, CONTAINER_PAD } from "./layout";
import { placeProblems, type PlacedProblems, type Problem } from "./problems";
import { createNodeRegistry, type NodeRegistry } from "./registry";

export const SLUG = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const NO_PROBLEMS: PlacedProblems = { byNode: {}, byEdge: {}, general: [] };

export interface GraphState {
  registry: NodeRegistry;
  meta: DefinitionMeta;
  nodes: FlowNode[];
  edges: FlowEdge[];
  selected: string | null;
  problems: PlacedProblems;
  /** Bumped when the whole graph is replaced, so forms showing it start afresh. */
  revision: number;
  saved: VersionInfo | null;
  dirty: boolean;
  setRegistry(registry: NodeRegistry): void;
  load(doc: Definition, saved?: VersionInfo | null): void;
  definition(): Definition;
  onNodesChange(changes: NodeChange<FlowNode>[]): void;
  onEdgesChange(changes: EdgeChange<FlowEdge>[]): void;
  canConnect(connection: Connection | FlowEdge): boolean;
  connect(connection: Connection): void;
  addNode(type: string, position: { x: number; y: number }, parentId?: string): string;
  updateSpec(id: string, spec: NodeSpec): void;
  renameNode(id: string, next: string): string | null;
  removeNode(id: string): void;
  select(id: string | null): void;
  setMeta(meta: DefinitionMeta): void;
  setProblems(problems: readonly Problem[]): void;
  markSaved(saved: VersionInfo): void;
}

function descendants(nodes: readonly FlowNode[], id: string): Set<string> {
  const found = new Set([id]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of nodes) {
      if (n.parentId && found.has(n.parentId) && !found.has(n.id)) {
        found.add(n.id);
        grew = true;
      }
    }
  }
  return found;
}

/** Edges keep their port across a rename of it (ports matched by position in the port list). */
function remapPorts(edges: FlowEdge[], id: string, before: string[], after: string[]): FlowEdge[] {
  if (before.join("\n") === after.join("\n")) return edges;
  const renamed = new Map<string, string>();
  if (before.length === after.length) before.forEach((p, i) => renamed.set(p, after[i] as string));
  const next: FlowEdge[] = [];
  for (const edge of edges) {
    if (edge.source !== id || !edge.sourceHandle || after.includes(edge.sourceHandle)) {
      next.push(edge);
      continue;
    }
    const port = renamed.get(edge.sourceHandle);
    if (port) next.push({ ...edge, sourceHandle: port, id: edgeId(edge.source, port, edge.target) });
  }
  return next;
}

export const useGraph = create<GraphState>()((set, get) => ({
  registry: createNodeRegistry([]),
  meta: emptyDefinition(),
  nodes: [],
  edges: [],
  selected: null,
  problems: NO_PROBLEMS,
  revision: 0,
  saved: null,
  dirty: false,

  setRegistry: (registry) => set({ registry }),

  load(doc, saved = null) {
    const canvas = definitionToCanvas(doc, get().registry);
    set((s) => ({
      ...canvas,
      selected: null,
      problems: NO_PROBLEMS,
      revision: s.revision + 1,
      saved,
      dirty: false,
    }));
  },

  definition() {
    const { meta, nodes, edges, registry } = get();
    return canvasToDefinition({ meta, nodes, edges }, registry);
  },

  onNodesChange(changes) {
    const edits = changes.some((c) => c.type === "position" || c.type === "remove" || c.type === "add");
    const removed = new Set(changes.flatMap((c) => (c.type === "remove" ? [c.id] : [])));
    set((s) => ({
      nodes: applyNodeChanges(changes, s.nodes),
      edges: removed.size ? s.edges.filter((e) => !removed.has(e.source) && !removed.has(e.target)) : s.edges,
      selected: s.selected && removed.has(s.selected) ? null : s.selected,
      dirty: s.dirty || edits,
    }));
  },

  onEdgesChange(changes) {
    const edits = changes.some((c) => c.type === "remove" || c.type === "add");
    set((s) => ({ edges: applyEdgeChanges(changes, s.edges), dirty: s.dirty || edits }));
  },

  canConnect(connection) {
    const { nodes, edges, registry } = get();
    const source = nodes.find((n) => n.id === connection.source);
    const target = nodes.find((n) => n.id === connection.target);
    if (!source || !target || source.id === target.id) return false;
    if ((source.parentId ?? "") !== (target.parentId ?? "")) return false; // bodies are closed
    if (!registry.hasInput(target.data.spec.type)) return false;
    const port = connection.sourceHandle ?? registry.defaultPort(source.data.spec.type, source.data.spec.config);
    return !edges.some((e) => e.id === edgeId(source.id, port, target.id));
  },

  connect(connection) {
    if (!get().canConnect(connection)) return;
    const { nodes, registry } = get();
    const source = nodes.find((n) => n.id === connection.source) as FlowNode;
    const spec = source.data.spec;
    const port = connection.sourceHandle ?? registry.defaultPort(spec.type, spec.config);
    const edge: FlowEdge = {
      id: edgeId(source.id, port, connection.target),
      source: source.id,
      sourceHandle: port,
      target: connection.target,
      targetHandle: TARGET_HANDLE,
      data: { implicit: port === "out" },
    };
    set((s) => ({
      edges: [...s.edges, edge],
      dirty: true,
      // An edge from the error port is what `on_error: branch` means.
      nodes:
        port === ERROR_PORT && spec["on_error"] !== "branch"
          ? s.nodes.map((n) => (n.id === source.id ? { ...n, data: { spec: { ...spec, on_error: "branch" } } } : n))
          : s.nodes,
    }));
  },

  addNode(type, position, parentId) {
    const { nodes, registry } = get();
    const taken = new Set(nodes.map((n) => n.id));
    const base = type.replace(/[^a-z0-9_-]/g, "_").replace(/^[^a-z0-9]+/, "") || "node";
    let n = 1;
    while (taken.has(`${base}_${n}`)) n += 1;
    const id = `${base}_${n}`;
    const container = registry.hasBody(type);
    const node: FlowNode = {
      id,
      type: container ? "container" : "step",
      position,
      data: { spec: { type, config: registry.starterConfig(type) } },
      ...(container ? { style: { width: 320, height: 180 } } : {}),
      ...(parentId ? { parentId, expandParent: true } : {}),
    };
    set((s) => ({ nodes: [...s.nodes, node], selected: id, dirty: true }));
    return id;
  },

  updateSpec(id, spec) {
    const { nodes, registry } = get();
    const node = nodes.find((n) => n.id === id);
    if (!node) return;
    const before = registry.ports(node.data.spec.type, node.data.spec.config);
    const after = registry.ports(spec.type, spec.config);
    set((s) => ({
      nodes: s.nodes.map((n) => (n.id === id ? { ...n, data: { spec } } : n)),
      edges: remapPorts(s.edges, id, before, after),
      dirty: true,
    }));
  },

  renameNode(id, next) {
    if (next === id) return null;
    if (!SLUG.test(next)) return "slug";
    if (get().nodes.some((n) => n.id === next)) return "taken";
    const swap = (x: string) => (x === id ? next : x);
    set((s) => ({
      nodes: s.nodes.map((n) => ({ ...n, id: swap(n.id), ...(n.parentId ? { parentId: swap(n.parentId) } : {}) })),
      edges: s.edges.map((e) => {
        const source = swap(e.source);
        const target = swap(e.target);
        return { ...e, source, target, id: edgeId(source, e.sourceHandle ?? "out", target) };
      }),
      selected: s.selected === id ? next : s.selected,
      problems: NO_PROBLEMS,
      dirty: true,
    }));
    return null;
  },

  removeNode(id) {
    const gone = descendants(get().nodes, id);
    set((s) => ({
      nodes: s.nodes.filter((n) => !gone.has(n.id)),
      edges: s.edges.filter((e) => !gone.has(e.source) && !gone.has(e.target)),
      selected: s.selected && gone.has(s.selected) ? null : s.selected,
      dirty: true,
    }));
  },

  select: (selected) => set({ selected }),
  setMeta: (meta) => set({ meta, dirty: true }),

  setProblems(problems) {
    set({ problems: placeProblems(get().definition(), problems, get().registry) });
  },

  markSaved: (saved) => set({ saved, dirty: false }),
}));

/** Where a node dropped at `point` (flow coordinates) goes: inside the innermost container under it. */
export function dropTarget(
  containers: { id: string; x: number; y: number; width: number; height: number; depth: number }[],
  point: { x: number; y: number },
): { parentId?: string; position: { x: number; y: number } } {
  const hits = containers
    .filter((c) => point.x >= c.x && point.x <= c.x + c.width && point.y >= c.y && point.y <= c.y + c.height)
    .sort((a, b) => b.depth - a.depth);
  const inner = hits[0];
  if (!inner) return { position: point };
  return {
    parentId: inner.id,
    position: {
      x: Math.max(CONTAINER_PAD, point.x - inner.x),
      y: Math.max(CONTAINER_HEADER, point.y - inner.y),
    },
  };
}
