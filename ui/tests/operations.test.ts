import { describe, expect, it } from "vitest";
import type { Usage } from "../src/api/types";
import { fieldErrors } from "../src/components/fieldErrors";
import { actorLabel, auditQuery, diffRows, showValue } from "../src/operations/audit";
import { exportName } from "../src/operations/download";
import { subjectLabel } from "../src/operations/subjects";
import { levelOf, percentOf, toQuotasInput, toQuotaValues, usageRows } from "../src/operations/quotas";
import { ageOrNull, toAge, toSeconds } from "../src/operations/retention";

const problem = (detail: string, errors?: unknown[]) => ({ type: "about:blank", title: "Unprocessable", status: 422, detail, errors });

describe("audit filters", () => {
  it("send only the filters that are set, trimmed, with times in ISO 8601", () => {
    expect(auditQuery({})).toEqual({});
    expect(auditQuery({ actor: "  u1 ", action: "", target_type: "user", since: Date.UTC(2026, 11, 1), until: Date.UTC(2026, 11, 2) }, 50)).toEqual({
      actor: "u1",
      target_type: "user",
      since: "2026-12-01T00:00:00.000Z",
      until: "2026-12-02T00:00:00.000Z",
      limit: 50,
    });
  });

  it("name the actor by the name typed at a login, else by id", () => {
    expect(actorLabel({ actor_type: "user", actor_id: "u1", actor_name: null })).toBe("user:u1");
    expect(actorLabel({ actor_type: "anonymous", actor_id: null, actor_name: "mallory" })).toBe("anonymous:mallory");
    const names = new Map([["u1", "alice"]]);
    expect(actorLabel({ actor_type: "user", actor_id: "u1", actor_name: null }, names)).toBe("user:alice");
    expect(actorLabel({ actor_type: "key", actor_id: "k9", actor_name: null }, names)).toBe("key:k9");
  });

  it("name a recorded subject when its id is known", () => {
    const names = new Map([["u1", "alice"], ["k1", "ci"]]);
    expect([subjectLabel("user:u1", names), subjectLabel("key:k1", names), subjectLabel("key:k2", names)]).toEqual(["user:alice", "key:ci", "key:k2"]);
    expect([subjectLabel(null, names), subjectLabel("cli", names)]).toEqual(["—", "cli"]);
  });
});

describe("audit diff", () => {
  it("pairs every leaf of before and after, nested paths dotted, in path order", () => {
    const rows = diffRows({ role: "viewer", keep: 1, gone: true, cfg: { a: 1, b: [1, 2] } }, { role: "editor", keep: 1, cfg: { a: 2, b: [1, 2] }, added: null });
    expect(rows.map((r) => [r.path, r.change])).toEqual([
      ["added", "added"],
      ["cfg.a", "changed"],
      ["cfg.b", "same"],
      ["gone", "removed"],
      ["keep", "same"],
      ["role", "changed"],
    ]);
    expect(rows.find((r) => r.path === "role")).toMatchObject({ before: "viewer", after: "editor" });
  });

  it("handles a missing side (a create or a delete) and empty objects as leaves", () => {
    expect(diffRows(null, { name: "k", tags: {} })).toEqual([
      { path: "name", before: undefined, after: "k", change: "added" },
      { path: "tags", before: undefined, after: {}, change: "added" },
    ]);
    expect(diffRows({ name: "k" }, undefined)).toEqual([{ path: "name", before: "k", after: undefined, change: "removed" }]);
    expect(diffRows(null, null)).toEqual([]);
  });

  it("shows strings bare and the rest as JSON", () => {
    expect([showValue("a"), showValue(3), showValue(null), showValue([1]), showValue(undefined)]).toEqual(["a", "3", "null", "[1]", ""]);
  });
});

describe("usage against limits", () => {
  it("is a percentage, capped at 100, null when unlimited, full at once for a limit of 0", () => {
    expect(percentOf(3, 4)).toBe(75);
    expect(percentOf(9, 4)).toBe(100);
    expect(percentOf(5, null)).toBeNull();
    expect(percentOf(0, 0)).toBe(100);
    expect([levelOf(1, 4), levelOf(4, 5), levelOf(5, 5), levelOf(0, 0), levelOf(7, null)]).toEqual(["ok", "warn", "full", "full", "unlimited"]);
  });

  it("reads every limit's usage from the usage document", () => {
    const usage: Usage = {
      workspace_id: "w",
      limits: { max_running: 2, starts_per_minute: null, tokens_per_day: 1000, tokens_per_month: null, cost_per_day: 0.5, cost_per_month: 10 },
      running: 1,
      starts_this_minute: 3,
      today: { period: "2026-12-02", tokens: 900, cost: 0.5 },
      this_month: { period: "2026-12", tokens: 5000, cost: 2.5 },
    };
    expect(usageRows(usage).map((r) => [r.key, r.used, r.percent, r.level])).toEqual([
      ["max_running", 1, 50, "ok"],
      ["starts_per_minute", 3, null, "unlimited"],
      ["tokens_per_day", 900, 90, "warn"],
      ["tokens_per_month", 5000, null, "unlimited"],
      ["cost_per_day", 0.5, 100, "full"],
      ["cost_per_month", 2.5, 25, "ok"],
    ]);
  });

  it("turns the form's empty fields into null (the default) and back", () => {
    const body = toQuotasInput({ max_running: 0, starts_per_minute: undefined, cost_per_day: null, tokens_per_day: Number.NaN });
    expect(body).toEqual({ max_running: 0, starts_per_minute: null, tokens_per_day: null, tokens_per_month: null, cost_per_day: null, cost_per_month: null });
    expect(toQuotaValues({ max_running: 3, starts_per_minute: null, tokens_per_day: null, tokens_per_month: null, cost_per_day: 1.5, cost_per_month: null })).toMatchObject({ max_running: 3, cost_per_day: 1.5, starts_per_minute: null });
  });
});

describe("problems on fields", () => {
  const fields = ["max_running", "starts_per_minute"] as const;

  it("follows the paths of a validation error's list", () => {
    const p = problem("the request is invalid", [
      { path: "body.max_running", message: "Input should be greater than or equal to 0" },
      { path: "body.extra", message: "Extra inputs are not permitted" },
    ]);
    expect(fieldErrors(p, fields)).toEqual({ max_running: ["Input should be greater than or equal to 0"], "": ["body.extra: Extra inputs are not permitted"] });
  });

  it("puts a domain error on the field its detail names first", () => {
    const p = problem("failed instances are kept at least as long: failed_s must be null or at least finished_s");
    expect(fieldErrors(p, ["finished_s", "failed_s"])).toEqual({ failed_s: [p.detail] });
    expect(fieldErrors(problem("something else"), ["finished_s"])).toEqual({ "": ["something else"] });
  });
});

describe("retention ages", () => {
  it("show seconds in the largest whole unit", () => {
    expect(toAge(30 * 86_400)).toEqual({ amount: 30, unit: "days" });
    expect(toAge(36 * 3_600)).toEqual({ amount: 36, unit: "hours" });
    expect(toAge(90)).toEqual({ amount: 1.5, unit: "minutes" });
    expect(toAge(60)).toEqual({ amount: 1, unit: "minutes" });
  });

  it("send whole seconds, and null for an empty field", () => {
    expect(toSeconds({ amount: 1.5, unit: "days" })).toBe(129_600);
    expect(ageOrNull(2, "hours")).toBe(7_200);
    expect(ageOrNull(null, "days")).toBeNull();
    expect(ageOrNull(undefined, "days")).toBeNull();
  });
});

describe("export file name", () => {
  it("is sortable and has no colons", () => {
    expect(exportName("audit", new Date(Date.UTC(2026, 11, 2, 12, 30, 5)), "jsonl")).toBe("audit-2026-12-02T12-30-05.jsonl");
  });
});
