import { describe, expect, it } from "vitest";
import { edgeId } from "../src/designer/convert";
import { locate, placeProblems } from "../src/designer/problems";
import { examples, registry } from "./helpers";

const fanout = examples().find(([f]) => f === "fanout.yaml")![1];

describe("validation problems on the canvas", () => {
  it("finds the node of a config path", () => {
    expect(locate(fanout, "$.nodes[1].config.branches[0].when", registry)).toEqual({ node: "route" });
  });

  it("walks into map bodies", () => {
    expect(locate(fanout, "$.nodes[4].config.body.nodes[0].config.output", registry)).toEqual({ node: "normalize" });
    expect(locate(fanout, "$.nodes[4].config.items", registry)).toEqual({ node: "tag_each" });
  });

  it("names edges the way the canvas does", () => {
    expect(locate(fanout, "$.edges[1].from", registry)).toEqual({ edge: edgeId("route", "bug", "triage_bug") });
    expect(locate(fanout, "$.edges[0]", registry)).toEqual({ edge: edgeId("classify", "out", "route") });
  });

  it("keeps document-level and out-of-range problems general", () => {
    const placed = placeProblems(
      fanout,
      [
        { path: "$.inputs.type", message: "bad" },
        { path: "$.nodes[0].config.output", message: "template" },
        { path: "$.nodes[99]", message: "gone" },
      ],
      registry,
    );
    expect(placed.byNode).toEqual({ classify: [{ path: "$.nodes[0].config.output", message: "template" }] });
    expect(placed.general.map((p) => p.message)).toEqual(["bad", "gone"]);
  });
});
