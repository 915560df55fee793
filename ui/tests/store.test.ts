import { beforeEach, describe, expect, it } from "vitest";
import { edgeId } from "../src/designer/convert";
import type { Definition } from "../src/designer/definition";
import { dropTarget, useGraph } from "../src/designer/store";
import { examples, registry } from "./helpers";

const fanout = () => structuredClone(examples().find(([f]) => f === "fanout.yaml")![1]);
const graph = () => useGraph.getState();

beforeEach(() => {
  graph().setRegistry(registry);
  graph().load(fanout());
});

describe("the graph store", () => {
  it("gives back the definition it was loaded with", () => {
    const { layout: _layout, ...doc } = graph().definition();
    const { layout: _none, ...original } = fanout();
    expect(doc).toEqual(original);
    expect(graph().dirty).toBe(false);
  });

  it("adds a node with a fresh id and the starter config of its kind", () => {
    const id = graph().addNode("condition", { x: 1, y: 2 });
    expect(id).toBe("condition_1");
    const node = graph().definition().nodes.find((n) => n.id === id);
    expect(node).toEqual({ id, type: "condition", config: { branches: [{ port: "yes", when: "inputs.flag" }], default: "no" } });
    expect(graph().selected).toBe(id);
    expect(graph().dirty).toBe(true);
  });

  it("drops a node into a map body as a child of the container", () => {
    const id = graph().addNode("transform", { x: 30, y: 60 }, "tag_each");
    const map = graph().definition().nodes.find((n) => n.id === "tag_each")!;
    const body = map.config!["body"] as unknown as Definition;
    expect(body.nodes.map((n) => n.id)).toEqual(["normalize", id]);
  });

  it("connects ports, refusing self-loops, duplicates and edges across a body boundary", () => {
    const a = graph().addNode("transform", { x: 0, y: 0 });
    const b = graph().addNode("approval", { x: 0, y: 0 });
    const connect = (source: string, sourceHandle: string | null, target: string) =>
      graph().connect({ source, sourceHandle, target, targetHandle: "in" });
    connect(a, "out", b);
    connect(a, "out", b);
    connect(a, "out", a);
    connect(a, "out", "normalize");
    connect(b, "approved", "summary");
    const doc = graph().definition();
    expect(doc.edges!.filter((e) => e.from.startsWith(a) || e.from.startsWith(b))).toEqual([
      { from: a, to: b },
      { from: `${b}.approved`, to: "summary" },
    ]);
  });

  it("sets on_error: branch when an edge leaves the error port", () => {
    graph().connect({ source: "classify", sourceHandle: "error", target: "summary", targetHandle: "in" });
    const classify = graph().definition().nodes.find((n) => n.id === "classify")!;
    expect(classify["on_error"]).toBe("branch");
    expect(graph().definition().edges).toContainEqual({ from: "classify.error", to: "summary" });
  });

  it("keeps edges on a condition port when the port is renamed", () => {
    const route = graph().nodes.find((n) => n.id === "route")!.data.spec;
    graph().updateSpec("route", { ...route, config: { branches: [{ port: "defect", when: "x" }], default: "other" } });
    expect(graph().definition().edges).toContainEqual({ from: "route.defect", to: "triage_bug" });
    expect(graph().edges.some((e) => e.id === edgeId("route", "defect", "triage_bug"))).toBe(true);
  });

  it("renames a node everywhere, and refuses a taken or invalid id", () => {
    expect(graph().renameNode("tag_each", "tags")).toBeNull();
    const doc = graph().definition();
    expect(doc.edges).toContainEqual({ from: "tags", to: "summary" });
    expect(graph().nodes.find((n) => n.id === "normalize")!.parentId).toBe("tags");
    expect(graph().renameNode("tags", "summary")).toBe("taken");
    expect(graph().renameNode("tags", "Not A Slug")).toBe("slug");
  });

  it("removes a container with its body and every edge touching them", () => {
    graph().removeNode("tag_each");
    const doc = graph().definition();
    expect(doc.nodes.map((n) => n.id)).not.toContain("tag_each");
    expect(graph().nodes.map((n) => n.id)).not.toContain("normalize");
    expect(doc.edges!.some((e) => e.to === "tag_each" || e.from === "tag_each")).toBe(false);
  });

  it("puts validation problems on their nodes", () => {
    graph().setProblems([{ path: "$.nodes[1].config.default", message: "bad port" }, { path: "$.outputs", message: "x" }]);
    expect(graph().problems.byNode["route"]).toHaveLength(1);
    expect(graph().problems.general).toHaveLength(1);
  });
});

describe("dropping onto the canvas", () => {
  const containers = [
    { id: "outer", x: 0, y: 0, width: 600, height: 400, depth: 0 },
    { id: "inner", x: 100, y: 100, width: 300, height: 200, depth: 1 },
  ];

  it("lands in the innermost container under the point, relative to it", () => {
    expect(dropTarget(containers, { x: 150, y: 200 })).toEqual({ parentId: "inner", position: { x: 50, y: 100 } });
    expect(dropTarget(containers, { x: 500, y: 300 })).toEqual({ parentId: "outer", position: { x: 500, y: 300 } });
  });

  it("lands on the top level outside every container, and below a container's header", () => {
    expect(dropTarget(containers, { x: 700, y: 50 })).toEqual({ position: { x: 700, y: 50 } });
    expect(dropTarget(containers, { x: 110, y: 105 }).position.y).toBeGreaterThanOrEqual(56);
  });
});
