// The workspace's retention policy (its admins): how long finished and failed instances are
// kept. Empty = keep for ever. The API validates (≥ 1 minute, failed ≥ finished); its 422
// lands on the field it names.
import { App, Button, Form, InputNumber, Popconfirm, Select, Space, Tag, Typography } from "antd";
import { useEffect, useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { RetentionPolicy } from "../api/types";
import { attempt } from "../components/feedback";
import { fieldErrors } from "../components/fieldErrors";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useT } from "../i18n";
import { api } from "../session/store";
import { ageOrNull, toAge, UNITS, type Unit } from "./retention";
import { subjectLabel, useSubjectNames } from "./subjects";

const FIELDS = ["finished_s", "failed_s"] as const;
type Values = { finished_s?: number | null; finished_unit: Unit; failed_s?: number | null; failed_unit: Unit };

function toValues(policy: RetentionPolicy): Values {
  const finished = policy.finished_s === null ? null : toAge(policy.finished_s);
  const failed = policy.failed_s === null ? null : toAge(policy.failed_s);
  return { finished_s: finished?.amount ?? null, finished_unit: finished?.unit ?? "days", failed_s: failed?.amount ?? null, failed_unit: failed?.unit ?? "days" };
}

export function RetentionForm({ policy, onSaved }: { policy: RetentionPolicy; onSaved: () => Promise<void> }) {
  const t = useT();
  const { message } = App.useApp();
  const [form] = Form.useForm<Values>();
  const names = useSubjectNames();
  const [problem, setProblem] = useState<Problem | null>(null);
  const path = { params: { path: { workspace_id: policy.workspace_id } } };
  useEffect(() => form.setFieldsValue(toValues(policy)), [form, policy]);

  const save = async (v: Values) => {
    setProblem(null);
    form.setFields(FIELDS.map((name) => ({ name, errors: [] })));
    const body = { finished_s: ageOrNull(v.finished_s, v.finished_unit), failed_s: ageOrNull(v.failed_s, v.failed_unit) };
    try {
      await unwrap(api.PUT("/api/v1/workspaces/{workspace_id}/retention", { ...path, body }));
      void message.success(t("retention.saved"));
      await onSaved();
    } catch (failure) {
      const p = problemOf(failure);
      const byField = fieldErrors(p, FIELDS);
      form.setFields(FIELDS.filter((k) => byField[k]).map((name) => ({ name, errors: byField[name] ?? [] })));
      if (byField[""]) setProblem(p);
    }
  };
  const reset = () =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/workspaces/{workspace_id}/retention", path)), t("retention.resetDone")).then(onSaved);
  const units = (Object.keys(UNITS) as Unit[]).map((u) => ({ value: u, label: t(`retention.${u}`) }));
  const age = (name: "finished_s" | "failed_s", label: string, help: string) => (
    <Form.Item label={label} extra={help} required={false}>
      <Space.Compact>
        <Form.Item name={name} noStyle>
          <InputNumber style={{ width: 160 }} placeholder={t("retention.keep")} data-testid={`retention-${name}`} />
        </Form.Item>
        <Form.Item name={name.replace("_s", "_unit")} noStyle>
          <Select style={{ width: 110 }} options={units} data-testid={`retention-${name}-unit`} />
        </Form.Item>
      </Space.Compact>
    </Form.Item>
  );

  return (
    <Form form={form} layout="vertical" onFinish={(v) => void save(v)} data-testid="retention-form" style={{ maxWidth: 560 }}>
      <Typography.Paragraph>
        <Tag color={policy.source === "workspace" ? "blue" : "default"} data-testid="retention-source">{t(`retention.source.${policy.source}`)}</Tag>
        {policy.updated_at ? t("retention.updatedBy", { at: formatTime(policy.updated_at), by: subjectLabel(policy.updated_by, names) }) : null}
      </Typography.Paragraph>
      <ProblemAlert problem={problem} />
      {age("finished_s", t("retention.finished"), t("retention.finishedHelp"))}
      {age("failed_s", t("retention.failed"), t("retention.failedHelp"))}
      <Space>
        <Button type="primary" htmlType="submit" data-testid="retention-save">{t("common.save")}</Button>
        {policy.source === "workspace" && (
          <Popconfirm title={t("retention.resetConfirm")} onConfirm={reset}>
            <Button data-testid="retention-reset">{t("retention.reset")}</Button>
          </Popconfirm>
        )}
      </Space>
    </Form>
  );
}
