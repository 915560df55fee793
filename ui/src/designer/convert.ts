// Definition ⇄ canvas, both ways, as pure functions. A map/loop body becomes child nodes of its
// container (React Flow sub-flow, positions relative to the container); `layout` keeps every
// position; an edge written `from: a` (default port) stays that way unless it is moved.
import type { Edge, Node } from "@xyflow/react";
import {
  bodyOf,
  parseFrom,
  type DefEdge,
  type DefGraph,
  type DefNode,
  type Definition,
  type DefinitionMeta,
  type Json,
  type JsonObject,
  type Layout,
  type NodeSpec,
} from "./definition";
import {
  CONTAINER_HEADER,
  CONTAINER_PAD,
  NODE_WIDTH,
  autoLayout,
  containerSize,
  stepHeight,
  type Size,
} from "./layout";
import type { NodeRegistry } from "./registry";

export interface NodeData extends Record<string, unknown> {
  spec: NodeSpec;
}
export type FlowNode = Node<NodeData, "step" | "container">;

export interface EdgeData extends Record<string, unknown> {
  /** Written without a port (`from: a`): kept so while the edge leaves the default port. */
  implicit: boolean;
}
export type FlowEdge = Edge<EdgeData>;

export interface Canvas {
  meta: DefinitionMeta;
  nodes: FlowNode[];
  edges: FlowEdge[];
}

export const TARGET_HANDLE = "in";

export function edgeId(source: string, port: string, target: string): string {
  return `${source}.${port}->${target}`;
}

/** The source node, port and target of a definition edge within `graph`. */
export function resolveEdge(
  edge: DefEdge,
  graph: readonly DefNode[],
  registry: NodeRegistry,
): { source: string; port: string; target: string; implicit: boolean } {
  const { node, port } = parseFrom(edge.from);
  const source = graph.find((n) => n.id === node);
  const resolved = port ?? (source ? registry.defaultPort(source.type, source.config) : "out");
  return { source: node, port: resolved, target: edge.to, implicit: port === null };
}

function specOf(node: DefNode, container: boolean): NodeSpec {
  const { id: _id, ...spec } = node;
  if (!container || !spec.config) return spec;
  const { body: _body, ...config } = spec.config;
  return { ...spec, config };
}

interface Built {
  nodes: FlowNode[];
  edges: FlowEdge[];
  placed: { position: { x: number; y: number }; size: Size }[];
}

function buildGraph(
  graph: DefGraph,
  parentId: string | undefined,
  layout: Layout,
  registry: NodeRegistry,
): Built {
  const sizes = new Map<string, Size>();
  const inner = new Map<string, Built>();
  for (const node of graph.nodes) {
    if (registry.hasBody(node.type)) {
      const body = bodyOf(node) ?? { nodes: [] };
      const built = buildGraph(body, node.id, layout, registry);
      inner.set(node.id, built);
      sizes.set(node.id, containerSize(built.placed));
    } else {
      const ports = registry.ports(node.type, node.config).length;
      sizes.set(node.id, { width: NODE_WIDTH, height: stepHeight(ports) });
    }
  }
  const edges = graph.edges ?? [];
  const links = edges.map((e): [string, string] => [parseFrom(e.from).node, e.to]);
  const origin = parentId ? { x: CONTAINER_PAD, y: CONTAINER_HEADER } : { x: 0, y: 0 };
  const ids = graph.nodes.map((n) => n.id);
  const positions = autoLayout(ids, links, sizes, layout, origin);
  const built: Built = { nodes: [], edges: [], placed: [] };
  for (const node of graph.nodes) {
    const position = positions.get(node.id) ?? origin;
    const size = sizes.get(node.id) ?? { width: NODE_WIDTH, height: stepHeight(1) };
    const body = inner.get(node.id);
    built.placed.push({ position, size });
    built.nodes.push({
      id: node.id,
      type: body ? "container" : "step",
      position: { ...position },
      data: { spec: specOf(node, body !== undefined) },
      ...(body ? { style: { width: size.width, height: size.height } } : {}),
      ...(parentId ? { parentId, expandParent: true } : {}),
    });
    if (body) {
      built.nodes.push(...body.nodes);
      built.edges.push(...body.edges);
    }
  }
  const seen = new Set<string>();
  for (const edge of edges) {
    const { source, port, target, implicit } = resolveEdge(edge, graph.nodes, registry);
    let id = edgeId(source, port, target);
    for (let n = 2; seen.has(id); n += 1) id = `${edgeId(source, port, target)}#${n}`;
    seen.add(id);
    built.edges.push({
      id,
      source,
      sourceHandle: port,
      target,
      targetHandle: TARGET_HANDLE,
      data: { implicit },
    });
  }
  return built;
}

/** Definition → canvas. Nodes come in document order, each container before its children. */
export function definitionToCanvas(doc: Definition, registry: NodeRegistry): Canvas {
  const { nodes, edges, layout, ...meta } = doc;
  const built = buildGraph({ nodes, edges: edges ?? [] }, undefined, layout ?? {}, registry);
  return { meta, nodes: built.nodes, edges: built.edges };
}

function toDefEdge(edge: FlowEdge, byId: ReadonlyMap<string, FlowNode>, registry: NodeRegistry): DefEdge {
  const port = edge.sourceHandle;
  if (!port) return { from: edge.source, to: edge.target };
  const source = byId.get(edge.source);
  const spec = source?.data.spec;
  const isDefault = spec !== undefined && registry.defaultPort(spec.type, spec.config) === port;
  const implicit = edge.data?.implicit ?? port === "out";
  return { from: implicit && isDefault ? edge.source : `${edge.source}.${port}`, to: edge.target };
}

/** Canvas → definition, with every node position in `layout`. */
export function canvasToDefinition(canvas: Canvas, registry: NodeRegistry): Definition {
  const byId = new Map(canvas.nodes.map((n) => [n.id, n]));
  const children = new Map<string, FlowNode[]>();
  for (const node of canvas.nodes) {
    const key = node.parentId ?? "";
    children.set(key, [...(children.get(key) ?? []), node]);
  }
  const graphOf = (parent: string): DefGraph => {
    const members = children.get(parent) ?? [];
    const ids = new Set(members.map((n) => n.id));
    const nodes = members.map((n): DefNode => {
      const spec = n.data.spec;
      if (!registry.hasBody(spec.type)) return { id: n.id, ...spec };
      const body = graphOf(n.id);
      const config: JsonObject = { ...(spec.config ?? {}), body: body as unknown as Json };
      return { id: n.id, ...spec, config };
    });
    const edges = canvas.edges.filter((e) => ids.has(e.source)).map((e) => toDefEdge(e, byId, registry));
    return parent === "" || edges.length > 0 ? { nodes, edges } : { nodes };
  };
  const top = graphOf("");
  const layout: Layout = {};
  for (const node of canvas.nodes) {
    layout[node.id] = { x: Math.round(node.position.x), y: Math.round(node.position.y) };
  }
  return { ...canvas.meta, nodes: top.nodes, edges: top.edges ?? [], layout };
}
