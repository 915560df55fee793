// The fields every node has besides its config (DESIGN §4), as a JSON Schema so that the same
// form generator renders them.
import type { JsonObject } from "./definition";

const DURATION: JsonObject = {
  oneOf: [{ type: "string" }, { type: "number" }],
  description: "a duration: 500ms, 30s, 5m, 1h, or seconds",
};

export const NODE_SETTINGS_SCHEMA: JsonObject = {
  type: "object",
  properties: {
    name: { type: "string", description: "display name" },
    timeout: DURATION,
    on_error: {
      enum: ["fail", "continue", "branch"],
      description: "fail the instance, continue with `default`, or take the error port",
    },
    default: { description: "JSON output used when on_error is continue" },
    join: { enum: ["all", "any"], description: "run after all incoming edges resolve, or the first" },
    requires: { type: "array", items: { type: "string" }, description: "capabilities an agent must have" },
    retry: {
      type: "object",
      properties: {
        max_attempts: { type: "integer", minimum: 1, maximum: 100 },
        backoff: { enum: ["fixed", "exponential"] },
        initial: DURATION,
        max: DURATION,
      },
    },
  },
};
