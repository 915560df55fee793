import { describe, expect, it } from "vitest";
import { definitionToCanvas } from "../src/designer/convert";
import { variablesFor } from "../src/designer/variables";
import { examples, registry } from "./helpers";

const doc = (file: string) => examples().find(([f]) => f === file)![1];

describe("template variables", () => {
  it("offers the inputs and the outputs of upstream nodes only", () => {
    const canvas = definitionToCanvas(doc("fanout.yaml"), registry);
    const paths = variablesFor(canvas, "triage_bug", registry).map((v) => v.path);
    expect(paths).toEqual(["inputs.ticket", "inputs.tags", "nodes.route.output", "nodes.classify.output"]);
  });

  it("offers item and index in a map body, and the container's upstream nodes", () => {
    const canvas = definitionToCanvas(doc("fanout.yaml"), registry);
    const paths = variablesFor(canvas, "normalize", registry).map((v) => v.path);
    expect(paths).toEqual(["inputs.ticket", "inputs.tags", "nodes.classify.output", "item", "index"]);
  });

  it("suggests the known fields of model outputs", () => {
    const canvas = definitionToCanvas(doc("ai-triage.yaml"), registry);
    const paths = variablesFor(canvas, "draft", registry).map((v) => v.path);
    expect(paths).toContain("nodes.classify.output.text");
    expect(paths).toContain("nodes.classify.output.json"); // classify has an output_schema
  });

  it("offers iteration in a loop body", () => {
    const canvas = definitionToCanvas(doc("orders.yaml"), registry);
    expect(variablesFor(canvas, "tick", registry).map((v) => v.path)).toContain("iteration");
  });
});
