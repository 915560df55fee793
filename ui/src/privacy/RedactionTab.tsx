// PII redaction of the current workspace (its admins): one switch, the built-in detectors and
// custom RE2 rules. What is stored and logged is redacted; the running task sees real values.
import { MinusCircleOutlined, PlusOutlined } from "@ant-design/icons";
import { Alert, App, Button, Card, Checkbox, Form, Input, Space, Spin, Switch, Typography } from "antd";
import { useEffect } from "react";
import { unwrap } from "../api/client";
import type { Redaction, RedactionInput } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useSave } from "../config/useSave";
import { useT } from "../i18n";
import { subjectLabel, useSubjectNames } from "../operations/subjects";
import { api, useSession } from "../session/store";

export const DETECTORS = ["email", "phone", "card", "iban", "api_key"] as const;

function RedactionForm({ rules, onSaved }: { rules: Redaction; onSaved: (r: Redaction) => void }) {
  const t = useT();
  const { message } = App.useApp();
  const [form] = Form.useForm<RedactionInput>();
  const save = useSave(form, ["enabled", "detectors", "custom"]);
  const names = useSubjectNames();
  useEffect(() => form.setFieldsValue({ enabled: rules.enabled, detectors: rules.detectors, custom: rules.custom }), [form, rules]);

  const submit = async (values: RedactionInput) => {
    let saved: Redaction | undefined;
    const ok = await save.run(async () => {
      saved = await unwrap(api.PUT("/api/v1/workspaces/{workspace_id}/redaction", { params: { path: { workspace_id: rules.workspace_id } }, body: values }));
    });
    if (ok && saved) {
      void message.success(t("pii.saved"));
      onSaved(saved);
    }
  };

  return (
    <Form form={form} layout="vertical" onFinish={(v) => void submit(v)} data-testid="redaction-form" style={{ maxWidth: 760 }}>
      <ProblemAlert problem={save.problem} />
      <Form.Item name="enabled" valuePropName="checked" label={t("pii.enabled")} extra={t("pii.enabledHelp")}>
        <Switch data-testid="redaction-enabled" />
      </Form.Item>
      <Form.Item name="detectors" label={t("pii.detectors")}>
        <Checkbox.Group options={DETECTORS.map((d) => ({ value: d, label: <span data-testid={`redaction-detector-${d}`}>{t(`pii.detector.${d}`)}</span> }))} />
      </Form.Item>
      <Form.List name="custom">
        {(rows, { add, remove }) => (
          <Form.Item label={t("pii.custom")} extra={t("pii.customHelp")}>
            {rows.map(({ key, name }) => (
              <Space key={key} align="baseline" wrap>
                <Form.Item name={[name, "name"]} rules={[{ required: true }]}>
                  <Input placeholder={t("agents.name")} style={{ width: 140 }} data-testid={`redaction-rule-name-${name}`} />
                </Form.Item>
                <Form.Item name={[name, "pattern"]} rules={[{ required: true }]}>
                  <Input placeholder={t("pii.pattern")} style={{ width: 280 }} className="cz-mono" data-testid={`redaction-rule-pattern-${name}`} />
                </Form.Item>
                <Form.Item name={[name, "replacement"]}>
                  <Input placeholder={t("pii.replacement")} style={{ width: 160 }} data-testid={`redaction-rule-replacement-${name}`} />
                </Form.Item>
                <MinusCircleOutlined onClick={() => remove(name)} />
              </Space>
            ))}
            <Button type="dashed" icon={<PlusOutlined />} onClick={() => add({ replacement: "" })} data-testid="redaction-rule-add">{t("pii.addRule")}</Button>
          </Form.Item>
        )}
      </Form.List>
      <Space>
        <Button type="primary" htmlType="submit" loading={save.saving} data-testid="redaction-save">{t("common.save")}</Button>
        {rules.updated_at ? (
          <Typography.Text type="secondary">{t("retention.updatedBy", { at: formatTime(rules.updated_at), by: subjectLabel(rules.updated_by, names) })}</Typography.Text>
        ) : null}
      </Space>
    </Form>
  );
}

export function RedactionTab() {
  const t = useT();
  const workspace = useSession((s) => s.workspace) ?? "default";
  const rules = useLoad(() => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/redaction", { params: { path: { workspace_id: workspace } } })), [workspace]);
  return (
    <Card size="small" title={t("pii.title")} data-testid="redaction-tab">
      <Alert type="info" showIcon message={t("pii.about")} style={{ marginBottom: 16 }} />
      <ProblemAlert problem={rules.error} onRetry={() => void rules.reload()} />
      {rules.data ? <RedactionForm rules={rules.data} onSaved={rules.set} /> : rules.loading && <Spin />}
    </Card>
  );
}
