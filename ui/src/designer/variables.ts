// The variables a node's templates can use (DESIGN §4): inputs.*, vars.*, the outputs of the
// nodes upstream of it (in its graph and, for a body node, upstream of its containers), and
// item/index in a map body or iteration in a loop body.
import { isJsonObject } from "./definition";
import type { Canvas } from "./convert";
import type { NodeRegistry } from "./registry";

export interface Variable {
  /** The expression, e.g. `nodes.classify.output.text`. */
  path: string;
  group: "inputs" | "vars" | "nodes" | "scope";
}

function upstream(canvas: Canvas, nodeId: string): string[] {
  const found: string[] = [];
  const queue = [nodeId];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const id = queue.shift() as string;
    for (const edge of canvas.edges) {
      if (edge.target === id && !seen.has(edge.source)) {
        seen.add(edge.source);
        found.push(edge.source);
        queue.push(edge.source);
      }
    }
  }
  return found;
}

export function variablesFor(canvas: Canvas, nodeId: string, registry: NodeRegistry): Variable[] {
  const vars: Variable[] = [];
  const inputs = canvas.meta["inputs"];
  const props = isJsonObject(inputs) ? inputs["properties"] : undefined;
  for (const key of isJsonObject(props) ? Object.keys(props) : []) vars.push({ path: `inputs.${key}`, group: "inputs" });
  const declared = canvas.meta["vars"];
  for (const key of isJsonObject(declared) ? Object.keys(declared) : []) vars.push({ path: `vars.${key}`, group: "vars" });
  const byId = new Map(canvas.nodes.map((n) => [n.id, n]));
  const scope: Variable[] = [];
  const sources: string[] = [];
  for (let current = byId.get(nodeId); current; current = current.parentId ? byId.get(current.parentId) : undefined) {
    sources.push(...upstream(canvas, current.id).filter((id) => !sources.includes(id)));
    const parent = current.parentId ? byId.get(current.parentId) : undefined;
    const type = parent?.data.spec.type;
    if (type === "map") scope.push({ path: "item", group: "scope" }, { path: "index", group: "scope" });
    if (type === "loop") scope.push({ path: "iteration", group: "scope" });
  }
  for (const id of sources) {
    const spec = byId.get(id)?.data.spec;
    if (!spec) continue;
    for (const path of registry.outputPaths(spec.type, spec.config)) vars.push({ path: `nodes.${id}.${path}`, group: "nodes" });
  }
  return [...vars, ...scope];
}
