// The process itself, shown when no node is selected: id, name, inputs schema, outputs, settings.
import { Alert, Form, Input, Typography } from "antd";
import { useState } from "react";
import { useT } from "../i18n";
import { isJsonObject, type JsonObject } from "./definition";
import { SLUG, useGraph } from "./store";

function JsonField({ label, name, testId }: { label: string; name: string; testId: string }) {
  const t = useT();
  const meta = useGraph((s) => s.meta);
  const revision = useGraph((s) => s.revision);
  const value = meta[name];
  const [text, setText] = useState(() => (value === undefined ? "" : JSON.stringify(value, null, 2)));
  const [error, setError] = useState<string | null>(null);
  const [seen, setSeen] = useState(revision);
  if (seen !== revision) {
    setSeen(revision);
    setText(value === undefined ? "" : JSON.stringify(value, null, 2));
  }
  const apply = (next: string) => {
    setText(next);
    const current = useGraph.getState().meta;
    if (next.trim() === "") {
      const { [name]: _gone, ...rest } = current;
      useGraph.getState().setMeta(rest as typeof current);
      setError(null);
      return;
    }
    try {
      const parsed: unknown = JSON.parse(next);
      if (!isJsonObject(parsed)) throw new Error(t("designer.expectedObject"));
      useGraph.getState().setMeta({ ...current, [name]: parsed as JsonObject });
      setError(null);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    }
  };
  return (
    <Form.Item label={label} validateStatus={error ? "error" : undefined} help={error ?? undefined}>
      <Input.TextArea
        className="cz-mono"
        value={text}
        onChange={(e) => apply(e.target.value)}
        autoSize={{ minRows: 3, maxRows: 16 }}
        spellCheck={false}
        data-testid={testId}
      />
    </Form.Item>
  );
}

export function ProcessPanel() {
  const t = useT();
  const meta = useGraph((s) => s.meta);
  const general = useGraph((s) => s.problems.general);
  const setText = (key: "id" | "name" | "description", value: string) =>
    useGraph.getState().setMeta({ ...useGraph.getState().meta, [key]: value });
  const description = typeof meta["description"] === "string" ? meta["description"] : "";
  return (
    <div data-testid="inspector-process">
      <Typography.Title level={5}>{t("designer.process")}</Typography.Title>
      {general.length > 0 && (
        <Alert
          type="error"
          showIcon
          style={{ marginBottom: 12 }}
          message={t("designer.problemsHere", { count: general.length })}
          description={
            <ul className="cz-problem-list">
              {general.map((p, i) => (
                <li key={i}>
                  <code>{p.path}</code> {p.message}
                </li>
              ))}
            </ul>
          }
        />
      )}
      <Form layout="vertical" size="small">
        <Form.Item
          label={t("designer.processId")}
          validateStatus={SLUG.test(meta.id) ? undefined : "error"}
          help={SLUG.test(meta.id) ? undefined : t("designer.idSlug")}
        >
          <Input value={meta.id} onChange={(e) => setText("id", e.target.value)} data-testid="process-id" />
        </Form.Item>
        <Form.Item label={t("designer.processName")}>
          <Input value={meta.name} onChange={(e) => setText("name", e.target.value)} data-testid="process-name" />
        </Form.Item>
        <Form.Item label={t("designer.description")}>
          <Input.TextArea
            value={description}
            autoSize={{ minRows: 2 }}
            onChange={(e) => setText("description", e.target.value)}
            data-testid="process-description"
          />
        </Form.Item>
        <JsonField label={t("designer.inputs")} name="inputs" testId="process-inputs" />
        <JsonField label={t("designer.outputs")} name="outputs" testId="process-outputs" />
        <JsonField label={t("designer.vars")} name="vars" testId="process-vars" />
        <JsonField label={t("designer.settings")} name="settings" testId="process-settings" />
      </Form>
      <Typography.Paragraph type="secondary" style={{ fontSize: 12 }}>
        {t("designer.selectHint")}
      </Typography.Paragraph>
    </div>
  );
}
