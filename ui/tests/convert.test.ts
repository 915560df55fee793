import { describe, expect, it } from "vitest";
import { canvasToDefinition, definitionToCanvas, edgeId } from "../src/designer/convert";
import type { Definition } from "../src/designer/definition";
import { examples, registry } from "./helpers";

function withoutLayout(doc: Definition): Omit<Definition, "layout"> {
  const { layout: _layout, ...rest } = doc;
  return rest;
}

describe("definition ⇄ canvas", () => {
  it.each(examples())("round-trips %s unchanged apart from the added layout", (_file, doc) => {
    const back = canvasToDefinition(definitionToCanvas(doc, registry), registry);
    expect(withoutLayout(back)).toEqual(withoutLayout(doc));
    expect(Object.keys(back.layout ?? {}).sort()).toEqual(
      definitionToCanvas(doc, registry).nodes.map((n) => n.id).sort(),
    );
  });

  it.each(examples())("is stable on a second round trip of %s, layout included", (_file, doc) => {
    const once = canvasToDefinition(definitionToCanvas(doc, registry), registry);
    const twice = canvasToDefinition(definitionToCanvas(once, registry), registry);
    expect(twice).toEqual(once);
  });

  it("keeps the positions stored in layout", () => {
    const [, fanout] = examples().find(([f]) => f === "fanout.yaml")!;
    const layout = { classify: { x: 10, y: 20 }, route: { x: 300, y: 40 }, normalize: { x: 30, y: 70 } };
    const canvas = definitionToCanvas({ ...fanout, layout }, registry);
    const at = (id: string) => canvas.nodes.find((n) => n.id === id)?.position;
    expect(at("classify")).toEqual({ x: 10, y: 20 });
    expect(at("route")).toEqual({ x: 300, y: 40 });
    expect(at("normalize")).toEqual({ x: 30, y: 70 }); // relative to its map container
    const back = canvasToDefinition(canvas, registry);
    expect(back.layout?.["classify"]).toEqual({ x: 10, y: 20 });
    expect(back.layout?.["normalize"]).toEqual({ x: 30, y: 70 });
  });

  it("places unplaced nodes left to right along the edges", () => {
    const [, fanout] = examples().find(([f]) => f === "fanout.yaml")!;
    const canvas = definitionToCanvas(fanout, registry);
    const x = (id: string) => canvas.nodes.find((n) => n.id === id)!.position.x;
    expect(x("classify")).toBeLessThan(x("route"));
    expect(x("route")).toBeLessThan(x("triage_bug"));
    expect(x("triage_bug")).toBeLessThan(x("summary"));
  });

  it("turns a map body into child nodes of a container, listed after it", () => {
    const [, fanout] = examples().find(([f]) => f === "fanout.yaml")!;
    const canvas = definitionToCanvas(fanout, registry);
    const ids = canvas.nodes.map((n) => n.id);
    const map = canvas.nodes.find((n) => n.id === "tag_each")!;
    const child = canvas.nodes.find((n) => n.id === "normalize")!;
    expect(map.type).toBe("container");
    expect(map.data.spec.config).not.toHaveProperty("body");
    expect(child.parentId).toBe("tag_each");
    expect(ids.indexOf("normalize")).toBeGreaterThan(ids.indexOf("tag_each"));
  });

  it("resolves condition ports and the default port of plain edges", () => {
    const doc: Definition = {
      schema: "cadenza/v1",
      id: "p",
      name: "P",
      nodes: [
        { id: "route", type: "condition", config: { branches: [{ port: "yes", when: "true" }], default: "no" } },
        { id: "a", type: "transform", config: { output: 1 } },
        { id: "b", type: "transform", config: { output: 2 } },
        { id: "c", type: "transform", config: { output: 3 }, on_error: "branch" },
        { id: "d", type: "transform", config: { output: 4 } },
      ],
      edges: [
        { from: "route.yes", to: "a" },
        { from: "route", to: "b" },
        { from: "a", to: "c" },
        { from: "c.error", to: "d" },
      ],
    };
    const canvas = definitionToCanvas(doc, registry);
    const handles = canvas.edges.map((e) => [e.id, e.sourceHandle, e.data?.implicit]);
    expect(handles).toEqual([
      [edgeId("route", "yes", "a"), "yes", false],
      [edgeId("route", "no", "b"), "no", true],
      [edgeId("a", "out", "c"), "out", true],
      [edgeId("c", "error", "d"), "error", false],
    ]);
    expect(canvasToDefinition(canvas, registry).edges).toEqual(doc.edges);
  });

  it("writes a new edge from a non-default port with its port", () => {
    const doc: Definition = {
      schema: "cadenza/v1",
      id: "p",
      name: "P",
      nodes: [
        { id: "ask", type: "approval", config: { title: "ok?" } },
        { id: "go", type: "transform", config: { output: 1 } },
      ],
      edges: [],
    };
    const canvas = definitionToCanvas(doc, registry);
    canvas.edges.push({ id: "x", source: "ask", sourceHandle: "approved", target: "go" });
    canvas.edges.push({ id: "y", source: "ask", sourceHandle: "out", target: "go" });
    expect(canvasToDefinition(canvas, registry).edges).toEqual([
      { from: "ask.approved", to: "go" },
      { from: "ask", to: "go" },
    ]);
  });

  it("keeps body edges inside the body and leaves out an empty body edge list", () => {
    const doc: Definition = {
      schema: "cadenza/v1",
      id: "p",
      name: "P",
      nodes: [
        {
          id: "each",
          type: "map",
          config: {
            items: "inputs.xs",
            body: {
              nodes: [
                { id: "one", type: "transform", config: { output: 1 } },
                { id: "two", type: "transform", config: { output: 2 } },
              ],
              edges: [{ from: "one", to: "two" }],
            },
          },
        },
        { id: "loop", type: "loop", config: { until: "true", max_iterations: 2, body: { nodes: [] } } },
      ],
      edges: [{ from: "each", to: "loop" }],
    };
    const back = canvasToDefinition(definitionToCanvas(doc, registry), registry);
    expect(withoutLayout(back)).toEqual(doc);
  });
});
