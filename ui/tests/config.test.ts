import { describe, expect, it } from "vitest";
import { formFieldErrors, toFieldPath } from "../src/components/formErrors";
import { credentials, editable, pairsToObject, parseSetting, settingKind } from "../src/config/config";

describe("configuration items", () => {
  it("are editable here unless the environment defines them; shared ones by system admins", () => {
    expect(editable({ scope: "environment" }, true)).toBe(false);
    expect(editable({ scope: "workspace" }, false)).toBe(true);
    expect(editable({ scope: "shared" }, false)).toBe(false);
    expect(editable({ scope: "shared" }, true)).toBe(true);
  });

  it("turn name/value rows into an object, dropping rows without a name", () => {
    expect(pairsToObject([{ name: " Authorization ", value: "Bearer x" }, { value: "orphan" }, { name: "X", value: undefined }])).toEqual({ Authorization: "Bearer x", X: "" });
    expect(pairsToObject(undefined)).toEqual({});
  });

  it("keep stored credentials unless told to replace them", () => {
    const rows = [{ name: "Authorization", value: "Bearer new" }];
    expect(credentials(rows, false, ["Authorization"])).toBeUndefined(); // omitted: the API keeps them
    expect(credentials(rows, true, ["Authorization"])).toEqual({ Authorization: "Bearer new" });
    expect(credentials([], true, ["Authorization"])).toEqual({}); // replace with none: cleared
    expect(credentials([], false, [])).toBeUndefined(); // nothing stored, nothing typed
    expect(credentials(rows, false, [])).toEqual({ Authorization: "Bearer new" });
  });

  it("edit a live setting with the editor of its value's type", () => {
    expect([settingKind({ value: true }), settingKind({ value: 30 }), settingKind({ value: "openai" }), settingKind({ value: null })]).toEqual(["boolean", "number", "text", "text"]);
    expect([parseSetting("number", "2.5"), parseSetting("number", 3), parseSetting("text", ""), parseSetting("boolean", false)]).toEqual([2.5, 3, null, false]);
  });
});

describe("validation errors on form fields", () => {
  it("turn API paths into antd field paths", () => {
    expect(toFieldPath("body.custom.0.pattern")).toEqual(["custom", 0, "pattern"]);
    expect(toFieldPath("query.scope")).toEqual(["query", "scope"]);
  });

  it("keep only the fields of the form, grouped by path", () => {
    const problem = {
      type: "about:blank",
      title: "Invalid request",
      status: 422,
      errors: [
        { path: "body.custom.1.pattern", message: "too long" },
        { path: "body.custom.1.pattern", message: "bad escape" },
        { path: "body.enabled", message: "Field required" },
        { path: "query.validate", message: "not a boolean" },
        "not an object",
      ],
    };
    expect(formFieldErrors(problem, (f) => ["custom", "enabled"].includes(f))).toEqual([
      { name: ["custom", 1, "pattern"], errors: ["too long", "bad escape"] },
      { name: ["enabled"], errors: ["Field required"] },
    ]);
  });
});

import { blobMarker, formatBytes } from "../src/monitor/payload";

describe("offloaded payloads", () => {
  const marker = { $cadenza: "blob", ref: "w/i/ab", sha256: "ab", size: 183_502, preview: "{\"rows\": [" };

  it("are recognised at the top of a slot, as an object or a text slot's prefix", () => {
    expect(blobMarker(marker)).toEqual({ ref: "w/i/ab", sha256: "ab", size: 183_502, preview: "{\"rows\": [" });
    expect(blobMarker("$cadenza:" + JSON.stringify(marker))?.size).toBe(183_502);
    expect(blobMarker({ $cadenza: "escaped", value: 1 })).toBeNull();
    expect(blobMarker({ rows: [marker] })).toBeNull();
    expect(blobMarker("$cadenza:not json")).toBeNull();
    expect(blobMarker("plain text")).toBeNull();
  });

  it("show their size in readable units", () => {
    expect([formatBytes(900), formatBytes(183_502), formatBytes(5 * 1024 * 1024)]).toEqual(["900 B", "179.2 KB", "5.0 MB"]);
  });
});
