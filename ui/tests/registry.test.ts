import { describe, expect, it } from "vitest";
import { createNodeRegistry } from "../src/designer/registry";
import { catalog, registry } from "./helpers";

describe("node registry", () => {
  it("has one kind per catalog entry, in catalog order", () => {
    expect(registry.kinds.map((k) => k.name)).toEqual(catalog.map((t) => t.name));
    expect(registry.kinds.every((k) => k.known)).toBe(true);
  });

  it("puts every catalog type in exactly one palette group", () => {
    const listed = registry.palette().flatMap((g) => g.kinds.map((k) => k.name));
    expect(listed.sort()).toEqual(catalog.map((t) => t.name).sort());
  });

  it("offers the catalog ports plus an error port on nodes that may fail", () => {
    expect(registry.ports("transform", {})).toEqual(["out", "error"]);
    expect(registry.ports("approval", { title: "x" })).toEqual(["out", "approved", "rejected", "error"]);
    expect(registry.ports("start", {})).toEqual(["out"]);
    expect(registry.ports("end", {})).toEqual([]);
  });

  it("takes condition ports from its branches and default", () => {
    const config = { branches: [{ port: "bug", when: "x" }, { port: "bill", when: "y" }], default: "other" };
    expect(registry.ports("condition", config)).toEqual(["bug", "bill", "other", "error"]);
    expect(registry.defaultPort("condition", config)).toBe("other");
    expect(registry.defaultPort("transform", {})).toBe("out");
    expect(registry.ports("condition", {})).toEqual(["error"]);
  });

  it("knows which kinds hold a body and which take input", () => {
    expect(registry.hasBody("map")).toBe(true);
    expect(registry.hasBody("loop")).toBe(true);
    expect(registry.hasBody("llm")).toBe(false);
    expect(registry.hasInput("start")).toBe(false);
    expect(registry.hasInput("end")).toBe(true);
  });

  it("gives a kind to a type the catalog does not list", () => {
    const kind = registry.get("quantum");
    expect(kind.known).toBe(false);
    expect(kind.name).toBe("quantum");
    expect(registry.ports("quantum", {})).toEqual(["out", "error"]);
  });

  it("renders a new backend type without console changes", () => {
    const extended = createNodeRegistry([
      ...catalog,
      {
        name: "email",
        type_version: 1,
        description: "Send an email",
        config_schema: { type: "object", properties: { to: { type: "string" } } },
        ports: ["out", "bounced"],
        dynamic_ports: false,
        has_body: false,
        execution: "worker",
        retryable: true,
      },
    ]);
    expect(extended.get("email").known).toBe(true);
    expect(extended.ports("email", {})).toEqual(["out", "bounced", "error"]);
    expect(extended.palette().some((g) => g.kinds.some((k) => k.name === "email"))).toBe(true);
  });

  it("gives starter configs that are fresh copies", () => {
    const a = registry.starterConfig("condition");
    a["default"] = "changed";
    expect(registry.starterConfig("condition")["default"]).toBe("no");
    expect(registry.ports("condition", registry.starterConfig("condition"))).toEqual(["yes", "no", "error"]);
  });
});
