// A workspace's own limits (system admins). Empty = the system default; the API validates,
// and its 422 messages land on the fields they are about.
import { App, Button, Form, InputNumber, Space } from "antd";
import { useEffect, useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { Quotas } from "../api/types";
import { fieldErrors } from "../components/fieldErrors";
import { ProblemAlert } from "../components/ProblemAlert";
import { useT } from "../i18n";
import { api } from "../session/store";
import { formatAmount, LIMIT_KEYS, toQuotasInput, toQuotaValues, type QuotaValues } from "./quotas";

interface Props {
  quotas: Quotas;
  editable: boolean;
  onSaved: (quotas: Quotas) => void;
}

export function QuotaForm({ quotas, editable, onSaved }: Props) {
  const t = useT();
  const { message } = App.useApp();
  const [form] = Form.useForm<QuotaValues>();
  const [problem, setProblem] = useState<Problem | null>(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => form.setFieldsValue(toQuotaValues(quotas.own)), [form, quotas]);

  const save = async (values: QuotaValues) => {
    setSaving(true);
    setProblem(null);
    form.setFields(LIMIT_KEYS.map((name) => ({ name, errors: [] })));
    try {
      const saved = await unwrap(
        api.PUT("/api/v1/workspaces/{workspace_id}/quotas", { params: { path: { workspace_id: quotas.workspace_id } }, body: toQuotasInput(values) }),
      );
      void message.success(t("quota.saved"));
      onSaved(saved);
    } catch (failure) {
      const p = problemOf(failure);
      const byField = fieldErrors(p, LIMIT_KEYS);
      form.setFields(LIMIT_KEYS.filter((k) => byField[k]).map((name) => ({ name, errors: byField[name] ?? [] })));
      if (byField[""] || Object.keys(byField).length === 0) setProblem(p);
    } finally {
      setSaving(false);
    }
  };
  const fallback = (key: (typeof LIMIT_KEYS)[number]) => {
    const value = quotas.effective[key];
    return quotas.own[key] === null ? (value === null ? t("quota.unlimited") : t("quota.default", { value: formatAmount(key, value) })) : undefined;
  };

  return (
    <Form form={form} layout="vertical" onFinish={(v) => void save(v)} disabled={!editable} data-testid="quota-form" className="cz-quota-form">
      <ProblemAlert problem={problem} />
      <div className="cz-quota-grid">
        {LIMIT_KEYS.map((key) => (
          <Form.Item key={key} name={key} label={t(`quota.${key}`)} extra={fallback(key)}>
            <InputNumber style={{ width: "100%" }} placeholder={t("quota.noOwn")} data-testid={`quota-${key}`} />
          </Form.Item>
        ))}
      </div>
      {editable && (
        <Space>
          <Button type="primary" htmlType="submit" loading={saving} data-testid="quota-save">{t("common.save")}</Button>
          <Button onClick={() => form.setFieldsValue(Object.fromEntries(LIMIT_KEYS.map((k) => [k, null])))} data-testid="quota-clear">{t("quota.clear")}</Button>
        </Space>
      )}
    </Form>
  );
}
