// Validation problems (`{path: "$.nodes[2].config.prompt", message}`) placed on what they concern:
// the deepest node the path walks into (bodies included) or the edge it names.
import { bodyOf, type DefGraph, type Definition } from "./definition";
import { edgeId, resolveEdge } from "./convert";
import type { NodeRegistry } from "./registry";

export interface Problem {
  path: string;
  message: string;
}

export interface PlacedProblems {
  byNode: Record<string, Problem[]>;
  byEdge: Record<string, Problem[]>;
  /** Problems about the document as a whole (inputs, outputs, settings, ...). */
  general: Problem[];
}

type Target = { node: string } | { edge: string } | null;

const STEP = /^\.(nodes|edges)\[(\d+)\]/;

/** What `path` is about in `doc`: a node id, an edge id (as the canvas names it), or nothing. */
export function locate(doc: Definition, path: string, registry: NodeRegistry): Target {
  let rest = path.startsWith("$") ? path.slice(1) : path;
  let graph: DefGraph = { nodes: doc.nodes, edges: doc.edges ?? [] };
  let found: Target = null;
  for (;;) {
    const match = STEP.exec(rest);
    if (!match) return found;
    const index = Number(match[2]);
    rest = rest.slice(match[0].length);
    if (match[1] === "edges") {
      const edge = graph.edges?.[index];
      if (!edge) return found;
      const { source, port, target } = resolveEdge(edge, graph.nodes, registry);
      return { edge: edgeId(source, port, target) };
    }
    const node = graph.nodes[index];
    if (!node) return found;
    found = { node: node.id };
    const body = bodyOf(node);
    if (!body || !rest.startsWith(".config.body")) return found;
    rest = rest.slice(".config.body".length);
    graph = body;
  }
}

export function placeProblems(doc: Definition, problems: readonly Problem[], registry: NodeRegistry): PlacedProblems {
  const placed: PlacedProblems = { byNode: {}, byEdge: {}, general: [] };
  for (const problem of problems) {
    const target = locate(doc, problem.path, registry);
    if (target && "node" in target) (placed.byNode[target.node] ??= []).push(problem);
    else if (target && "edge" in target) (placed.byEdge[target.edge] ??= []).push(problem);
    else placed.general.push(problem);
  }
  return placed;
}
