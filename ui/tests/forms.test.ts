import { describe, expect, it } from "vitest";
import type { JsonObject } from "../src/designer/definition";
import { schemaToFields, type FieldSpec } from "../src/forms/fields";
import { configToValues, valuesToConfig } from "../src/forms/values";
import { catalog } from "./helpers";

const schemaOf = (name: string) => catalog.find((t) => t.name === name)!.config_schema as JsonObject;
const byKey = (fields: FieldSpec[], key: string) => fields.find((f) => f.key === key)!;
const kinds = (fields: FieldSpec[]) => Object.fromEntries(fields.map((f) => [f.key, f.kind]));

describe("schema → fields", () => {
  it("maps every JSON Schema shape of the llm node", () => {
    const fields = schemaToFields(schemaOf("llm"), { templates: true });
    expect(kinds(fields)).toEqual({
      prompt: "text",
      provider: "string",
      model: "string",
      system: "text",
      temperature: "number",
      max_tokens: "integer",
      output_schema: "json",
      stream: "boolean",
    });
    expect(fields[0]).toMatchObject({ key: "prompt", required: true, variables: "template" });
    expect(byKey(fields, "temperature")).toMatchObject({ minimum: 0, maximum: 2 });
    expect(byKey(fields, "output_schema").shape).toBe("object");
  });

  it("renders enums, string lists and lists of objects", () => {
    const http = schemaToFields(schemaOf("http"), { templates: true });
    expect(byKey(http, "method")).toMatchObject({ kind: "enum", options: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] });
    expect(byKey(http, "expect_status")).toMatchObject({ kind: "json", shape: "array" });
    expect(byKey(http, "json").kind).toBe("json");
    const tools = byKey(schemaToFields(schemaOf("agent"), { templates: true }), "tools");
    expect(tools.kind).toBe("object-list");
    expect(kinds(tools.fields!)).toEqual({ server: "string", names: "string-list" });
    expect(tools.fields![0]!.path).toBe("tools[].server");
  });

  it("marks bare expressions apart from templates", () => {
    const fields = schemaToFields(schemaOf("condition"), { templates: true });
    const branches = byKey(fields, "branches");
    expect(branches.kind).toBe("object-list");
    expect(byKey(branches.fields!, "when").variables).toBe("expression");
    expect(byKey(branches.fields!, "port").variables).toBeUndefined(); // a name, not a template
    expect(byKey(fields, "default").variables).toBeUndefined();
    expect(byKey(branches.fields!, "when").kind).toBe("string");
    expect(byKey(schemaToFields(schemaOf("map"), { templates: true }), "items").variables).toBe("expression");
  });

  it("turns unions of strings, numbers and constants into one scalar field", () => {
    expect(byKey(schemaToFields(schemaOf("wait")), "duration")).toMatchObject({ kind: "scalar", numeric: true });
    expect(byKey(schemaToFields(schemaOf("wait")), "until")).toMatchObject({ kind: "scalar", numeric: true });
    expect(byKey(schemaToFields(schemaOf("subprocess")), "version")).toMatchObject({
      kind: "scalar",
      numeric: true,
      options: ["latest"],
    });
  });

  it("omits the body of containers and lists required fields first", () => {
    const fields = schemaToFields(schemaOf("loop"), { templates: true, omit: ["body"] });
    expect(fields.map((f) => f.key)).toEqual(["until", "max_iterations", "output"]);
  });

  it("renders nested objects and plain (non-template) inputs", () => {
    const inputs = {
      type: "object",
      properties: {
        ticket: { type: "string" },
        customer: { type: "object", properties: { name: { type: "string" }, vip: { type: "boolean" } }, required: ["name"] },
        tags: { type: "array", items: { type: "string" } },
      },
      required: ["ticket"],
    };
    const fields = schemaToFields(inputs);
    expect(kinds(fields)).toEqual({ ticket: "string", customer: "object", tags: "string-list" });
    expect(byKey(fields, "ticket").variables).toBeUndefined();
    expect(byKey(fields, "customer").fields!.map((f) => [f.path, f.required])).toEqual([
      ["customer.name", true],
      ["customer.vip", false],
    ]);
  });

  it("has no fields for anything but an object schema", () => {
    expect(schemaToFields(undefined)).toEqual([]);
    expect(schemaToFields({ type: "object" })).toEqual([]);
  });
});

describe("config ⇄ values", () => {
  const condition = schemaToFields(schemaOf("condition"), { templates: true });

  it("round-trips a condition config through the form", () => {
    const config = { branches: [{ port: "bug", when: "nodes.a.output == 'bug'" }], default: "other" };
    const values = configToValues(condition, config);
    expect(values).toEqual({ branches: [{ port: "bug", when: "nodes.a.output == 'bug'" }], default: "other" });
    expect(valuesToConfig(condition, values)).toEqual({ config, errors: [] });
  });

  it("shows JSON fields as text and parses them back", () => {
    const fields = schemaToFields(schemaOf("transform"), { templates: true });
    const values = configToValues(fields, { output: { label: "{{ x }}" } });
    expect(values["output"]).toBe('{\n  "label": "{{ x }}"\n}');
    expect(valuesToConfig(fields, { output: '["a", 1]' }).config).toEqual({ output: ["a", 1] });
  });

  it("keeps the previous value of a field that does not parse, and says why", () => {
    const fields = schemaToFields(schemaOf("llm"), { templates: true });
    const { config, errors } = valuesToConfig(
      fields,
      { prompt: "hi", output_schema: "{oops" },
      { prompt: "old", output_schema: { type: "object" } },
    );
    expect(config).toEqual({ prompt: "hi", output_schema: { type: "object" } });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.path).toBe("output_schema");
    expect(errors[0]!.message).toMatch(/invalid JSON/);
    const wrongShape = valuesToConfig(fields, { prompt: "hi", output_schema: "[1]" });
    expect(wrongShape.errors[0]!.message).toBe("expected a JSON object");
  });

  it("leaves out empty optional values and keeps keys without a field", () => {
    const fields = schemaToFields(schemaOf("llm"), { templates: true, omit: ["body"] });
    const values = configToValues(fields, { prompt: "p" });
    expect(values).toMatchObject({ prompt: "p", model: "", temperature: null, output_schema: "", stream: undefined });
    const { config } = valuesToConfig(fields, { ...values, stream: false }, { prompt: "p", extra: 1 });
    expect(config).toEqual({ prompt: "p", stream: false, extra: 1 });
  });

  it("parses scalar unions into numbers, constants or strings", () => {
    const version = schemaToFields(schemaOf("subprocess"));
    expect(valuesToConfig(version, { process: "child", version: "3" }).config).toEqual({ process: "child", version: 3 });
    expect(valuesToConfig(version, { process: "child", version: "latest" }).config).toEqual({ process: "child", version: "latest" });
    const wait = schemaToFields(schemaOf("wait"));
    expect(valuesToConfig(wait, { duration: "30s", until: "" }).config).toEqual({ duration: "30s" });
    expect(configToValues(wait, { duration: 1.5 })).toEqual({ duration: "1.5", until: "" });
  });

  it("builds nested objects and lists, dropping empty items' blanks", () => {
    const tools = schemaToFields(schemaOf("agent"), { templates: true });
    const { config } = valuesToConfig(tools, {
      instructions: "go",
      tools: [{ server: "time", names: ["now", ""] }, { server: "kb", names: [] }],
      max_steps: 4,
    });
    expect(config).toEqual({ instructions: "go", tools: [{ server: "time", names: ["now"] }, { server: "kb" }], max_steps: 4 });
  });

  it("keeps required empty lists, which the backend then reports", () => {
    const { config } = valuesToConfig(condition, { branches: [], default: "" });
    expect(config).toEqual({ branches: [] });
  });
});
