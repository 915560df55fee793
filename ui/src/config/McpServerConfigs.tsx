// The MCP servers this workspace sees, as configured; header and env values never come back.
import { PlusOutlined } from "@ant-design/icons";
import { App, Button, Card, Empty, Popconfirm, Space, Table, Tag } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { McpServerConfig } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { editable } from "./config";
import { McpServerConfigForm } from "./McpServerConfigForm";
import { SourceTag } from "./SourceTag";

export function McpServerConfigs({ onChanged }: { onChanged: () => void }) {
  const t = useT();
  const { message } = App.useApp();
  const system = useSession((s) => s.me?.permissions.includes("system") ?? false);
  const items = useLoad(() => unwrap(api.GET("/api/v1/config/mcp-servers")), []);
  const [form, setForm] = useState<{ editing: McpServerConfig | null } | null>(null);
  const changed = () => {
    void items.reload();
    onChanged();
  };
  const remove = (m: McpServerConfig) =>
    attempt(
      message,
      () => unwrap(api.DELETE("/api/v1/config/mcp-servers/{server}", { params: { path: { server: m.name }, query: { scope: m.scope === "shared" ? "shared" : "workspace" } } })),
      t("config.deleted", { name: m.name }),
    ).then(changed);

  return (
    <Card size="small" title={t("config.mcpServers")} style={{ marginTop: 16 }} data-testid="mcp-configs"
      extra={<Button type="primary" size="small" icon={<PlusOutlined />} onClick={() => setForm({ editing: null })} data-testid="mcp-config-new">{t("config.newMcp")}</Button>}>
      <ProblemAlert problem={items.error} onRetry={() => void items.reload()} />
      <Table<McpServerConfig>
        rowKey={(m) => `${m.scope}:${m.name}`}
        size="small"
        loading={items.loading}
        dataSource={items.data ?? []}
        pagination={false}
        data-testid="mcp-configs-table"
        locale={{ emptyText: <Empty description={t("mcp.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string) => <b data-testid={`mcp-config-${n}`}>{n}</b> },
          { title: t("config.source"), dataIndex: "scope", render: (s: McpServerConfig["scope"], m) => <SourceTag scope={s} testId={`mcp-config-source-${m.name}`} /> },
          { title: t("mcp.transport"), dataIndex: "transport", render: (v: string) => <Tag>{v}</Tag> },
          { title: t("config.endpoint"), key: "endpoint", render: (_, m) => <code className="cz-clip">{m.url ?? [m.command, ...(m.args ?? [])].join(" ")}</code> },
          {
            title: t("config.credentials"),
            key: "names",
            render: (_, m) => [...(m.header_names ?? []), ...(m.env_names ?? [])].map((n) => <Tag key={n}>{n}</Tag>),
          },
          {
            key: "actions",
            render: (_, m) =>
              editable(m, system) && (
                <Space>
                  <Button size="small" onClick={() => setForm({ editing: m })} data-testid={`mcp-config-edit-${m.name}`}>{t("common.edit")}</Button>
                  <Popconfirm title={t("config.deleteConfirm", { name: m.name })} onConfirm={() => remove(m)} okButtonProps={{ danger: true }}>
                    <Button size="small" danger data-testid={`mcp-config-delete-${m.name}`}>{t("common.delete")}</Button>
                  </Popconfirm>
                </Space>
              ),
          },
        ]}
      />
      <McpServerConfigForm
        open={form !== null}
        editing={form?.editing ?? null}
        system={system}
        onClose={() => setForm(null)}
        onSaved={() => {
          setForm(null);
          void message.success(t("config.saved"));
          changed();
        }}
      />
    </Card>
  );
}
