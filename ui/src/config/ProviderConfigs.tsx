// The model providers this workspace sees, as configured: the environment's (read-only),
// the shared ones (system admins) and its own (its admins). Used without a restart.
import { PlusOutlined } from "@ant-design/icons";
import { App, Button, Card, Empty, Popconfirm, Space, Table, Tag } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { ProviderConfig } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { editable } from "./config";
import { ProviderConfigForm } from "./ProviderConfigForm";
import { SourceTag } from "./SourceTag";

export function ProviderConfigs({ onChanged }: { onChanged: () => void }) {
  const t = useT();
  const { message } = App.useApp();
  const system = useSession((s) => s.me?.permissions.includes("system") ?? false);
  const items = useLoad(() => unwrap(api.GET("/api/v1/config/providers")), []);
  const [form, setForm] = useState<{ editing: ProviderConfig | null } | null>(null);
  const saved = () => {
    setForm(null);
    void message.success(t("config.saved"));
    void items.reload();
    onChanged();
  };
  const remove = (p: ProviderConfig) =>
    attempt(
      message,
      () => unwrap(api.DELETE("/api/v1/config/providers/{provider}", { params: { path: { provider: p.name }, query: { scope: p.scope === "shared" ? "shared" : "workspace" } } })),
      t("config.deleted", { name: p.name }),
    ).then(() => {
      void items.reload();
      onChanged();
    });

  return (
    <Card size="small" title={t("config.providers")} style={{ marginTop: 16 }} data-testid="provider-configs"
      extra={<Button type="primary" size="small" icon={<PlusOutlined />} onClick={() => setForm({ editing: null })} data-testid="provider-config-new">{t("config.newProvider")}</Button>}>
      <ProblemAlert problem={items.error} onRetry={() => void items.reload()} />
      <Table<ProviderConfig>
        rowKey={(p) => `${p.scope}:${p.name}`}
        size="small"
        loading={items.loading}
        dataSource={items.data ?? []}
        pagination={false}
        data-testid="provider-configs-table"
        locale={{ emptyText: <Empty description={t("providers.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string) => <b data-testid={`provider-config-${n}`}>{n}</b> },
          { title: t("config.source"), dataIndex: "scope", render: (s: ProviderConfig["scope"], p) => <SourceTag scope={s} testId={`provider-config-source-${p.name}`} /> },
          { title: t("providers.kind"), dataIndex: "kind", render: (k: string) => <Tag>{k}</Tag> },
          { title: t("providers.baseUrl"), dataIndex: "base_url", render: (v: string | null) => (v ? <code>{v}</code> : "—") },
          { title: t("config.defaultModel"), dataIndex: "default_model", render: (v: string) => v || "—" },
          { title: t("config.apiKey"), dataIndex: "has_api_key", render: (k: boolean) => (k ? <Tag color="green">{t("config.keySet")}</Tag> : <Tag>{t("config.noKey")}</Tag>) },
          {
            key: "actions",
            render: (_, p) =>
              editable(p, system) && (
                <Space>
                  <Button size="small" onClick={() => setForm({ editing: p })} data-testid={`provider-config-edit-${p.name}`}>{t("common.edit")}</Button>
                  <Popconfirm title={t("config.deleteConfirm", { name: p.name })} onConfirm={() => remove(p)} okButtonProps={{ danger: true }}>
                    <Button size="small" danger data-testid={`provider-config-delete-${p.name}`}>{t("common.delete")}</Button>
                  </Popconfirm>
                </Space>
              ),
          },
        ]}
      />
      <ProviderConfigForm open={form !== null} editing={form?.editing ?? null} system={system} onClose={() => setForm(null)} onSaved={saved} />
    </Card>
  );
}
