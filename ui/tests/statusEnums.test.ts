import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { AGENT_STATUSES, DEFINITION_STATUSES, INSTANCE_STATUSES, TASK_STATUSES, every, isOneOf } from "../src/api/status";

type EnumSchema = { enum: string[] };
const openapi = JSON.parse(readFileSync(fileURLToPath(new URL("../openapi.json", import.meta.url)), "utf8")) as {
  components: { schemas: Record<string, EnumSchema> };
};

describe("status vocabularies", () => {
  it("list the values of the API's enums in the API's order", () => {
    const values = (name: string) => openapi.components.schemas[name]?.enum;
    expect([INSTANCE_STATUSES, TASK_STATUSES, DEFINITION_STATUSES, AGENT_STATUSES]).toEqual([
      values("InstanceStatus"),
      values("TaskStatus"),
      values("DefinitionStatus"),
      values("AgentStatus"),
    ]);
  });

  it("do not type-check when a list misses a value or adds one", () => {
    type AB = "a" | "b";
    // @ts-expect-error "b" is missing
    every<AB>()(["a"]);
    // @ts-expect-error "c" is not a value of AB
    every<AB>()(["a", "b", "c"]);
    expect(every<AB>()(["b", "a"])).toEqual(["b", "a"]);
  });

  it("narrow strings from outside to a status", () => {
    expect([isOneOf(INSTANCE_STATUSES, "failed"), isOneOf(INSTANCE_STATUSES, "paused"), isOneOf(INSTANCE_STATUSES, null)]).toEqual([true, false, false]);
  });
});
