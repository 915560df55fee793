// What the designer's toolbar does, against the API and the graph store.
import type { MessageInstance } from "antd/es/message/interface";
import { unwrap } from "../api/client";
import { problemOf } from "../api/problem";
import type { VersionInfo } from "../api/types";
import type { Translate } from "../i18n";
import { api } from "../session/store";
import type { JsonObject } from "./definition";
import { useGraph } from "./store";
import { download, parseDefinition, toYaml } from "./yamlio";

function fail(message: MessageInstance, error: unknown): void {
  const p = problemOf(error);
  void message.error(p.detail ? `${p.title}: ${p.detail}` : p.title, 6);
}

/** Validate the current graph; problems land on their nodes. True when it is valid. */
export async function validate(message: MessageInstance, t: Translate, quiet = false): Promise<boolean> {
  const document = useGraph.getState().definition() as unknown as JsonObject;
  try {
    const result = await unwrap(api.POST("/api/v1/processes/definitions/validate", { body: { document } }));
    useGraph.getState().setProblems(result.problems);
    if (result.valid && !quiet) void message.success(t("designer.valid"));
    if (!result.valid) void message.warning(t("designer.invalid", { count: result.problems.length }));
    return result.valid;
  } catch (error) {
    fail(message, error);
    return false;
  }
}

/** Save a draft version (after a clean validation). */
export async function save(message: MessageInstance, t: Translate): Promise<VersionInfo | null> {
  if (!(await validate(message, t, true))) return null;
  const document = useGraph.getState().definition() as unknown as JsonObject;
  try {
    const saved = await unwrap(api.POST("/api/v1/processes/definitions", { body: { document } }));
    useGraph.getState().markSaved(saved);
    void message.success(t("designer.saved", { version: saved.version }));
    return saved;
  } catch (error) {
    fail(message, error);
    return null;
  }
}

export async function publish(message: MessageInstance, t: Translate, version: VersionInfo): Promise<VersionInfo | null> {
  try {
    const published = await unwrap(
      api.POST("/api/v1/processes/definitions/{process_id}/versions/{version}/publish", {
        params: { path: { process_id: version.process_id, version: version.version } },
      }),
    );
    if (useGraph.getState().saved?.version === published.version) useGraph.getState().markSaved(published);
    void message.success(t("designer.published", { version: published.version }));
    return published;
  } catch (error) {
    fail(message, error);
    return null;
  }
}

export function exportYaml(): void {
  const doc = useGraph.getState().definition();
  download(`${doc.id || "process"}.yaml`, toYaml(doc));
}

export async function importYaml(message: MessageInstance, t: Translate, file: File): Promise<void> {
  const parsed = parseDefinition(await file.text());
  if ("error" in parsed) {
    void message.error(t("designer.importFailed", { reason: parsed.error }), 8);
    return;
  }
  useGraph.getState().load(parsed.doc, null);
  useGraph.setState({ dirty: true });
  void message.success(t("designer.imported", { name: parsed.doc.name || parsed.doc.id }));
}
