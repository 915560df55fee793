// The settings a system admin may change while the server runs; every process applies a change
// on its next reload. What the environment or cadenza.toml sets is shown read-only.
import { App, Button, Card, Empty, Input, InputNumber, Popconfirm, Space, Switch, Table, Tag, Tooltip } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { LiveSetting } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";
import { parseSetting, settingKind } from "./config";

type Draft = string | number | boolean | null;

function Editor({ setting, value, onChange }: { setting: LiveSetting; value: Draft; onChange: (v: Draft) => void }) {
  const kind = settingKind(setting);
  const testId = `setting-input-${setting.name}`;
  if (kind === "boolean") return <Switch checked={Boolean(value)} onChange={onChange} data-testid={testId} />;
  if (kind === "number") return <InputNumber value={value as number | null} onChange={(v) => onChange(v)} data-testid={testId} />;
  return <Input value={value === null ? "" : String(value)} onChange={(e) => onChange(e.target.value)} style={{ width: 240 }} data-testid={testId} />;
}

const COLORS: Record<LiveSetting["source"], string> = { environment: "default", database: "blue", default: "default" };

export function LiveSettings() {
  const t = useT();
  const { message } = App.useApp();
  const settings = useLoad(() => unwrap(api.GET("/api/v1/config/settings")), []);
  const [drafts, setDrafts] = useState<Record<string, Draft>>({});
  const draftOf = (s: LiveSetting): Draft => (s.name in drafts ? (drafts[s.name] ?? null) : s.value);
  const done = (name: string) => {
    setDrafts(({ [name]: _, ...rest }) => rest);
    return settings.reload();
  };
  const save = (s: LiveSetting) =>
    attempt(
      message,
      () => unwrap(api.PUT("/api/v1/config/settings/{setting}", { params: { path: { setting: s.name } }, body: { value: parseSetting(settingKind(s), draftOf(s)) } })),
      t("config.settingSaved", { name: s.name }),
    ).then((ok) => (ok ? done(s.name) : undefined));
  const reset = (s: LiveSetting) =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/config/settings/{setting}", { params: { path: { setting: s.name } } })), t("config.settingReset", { name: s.name })).then(() => done(s.name));

  return (
    <Card size="small" title={t("config.liveSettings")} style={{ marginBottom: 16 }} data-testid="live-settings">
      <ProblemAlert problem={settings.error} onRetry={() => void settings.reload()} />
      <Table<LiveSetting>
        rowKey="name"
        size="small"
        loading={settings.loading}
        dataSource={settings.data ?? []}
        pagination={false}
        locale={{ emptyText: <Empty description={t("settings.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string) => <code>{n}</code> },
          {
            title: t("config.value"),
            key: "value",
            render: (_, s) =>
              s.source === "environment" ? (
                <code data-testid={`setting-value-${s.name}`}>{String(s.value)}</code>
              ) : (
                <Editor setting={s} value={draftOf(s)} onChange={(v) => setDrafts((d) => ({ ...d, [s.name]: v }))} />
              ),
          },
          {
            title: t("config.source"),
            dataIndex: "source",
            render: (src: LiveSetting["source"], s) => (
              <Tooltip title={src === "environment" ? t("config.readOnly") : undefined}>
                <Tag color={COLORS[src]} data-testid={`setting-source-${s.name}`}>{t(`config.source.${src}`)}</Tag>
              </Tooltip>
            ),
          },
          {
            key: "actions",
            render: (_, s) =>
              s.source !== "environment" && (
                <Space>
                  <Button size="small" type="primary" disabled={!(s.name in drafts)} onClick={() => void save(s)} data-testid={`setting-save-${s.name}`}>{t("common.save")}</Button>
                  {s.source === "database" && (
                    <Popconfirm title={t("config.settingResetConfirm", { name: s.name })} onConfirm={() => reset(s)}>
                      <Button size="small" data-testid={`setting-reset-${s.name}`}>{t("config.reset")}</Button>
                    </Popconfirm>
                  )}
                </Space>
              ),
          },
        ]}
      />
    </Card>
  );
}
