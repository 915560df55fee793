// MCP servers and their tools, with the pinned-definition status of each tool; a tool whose
// definition changed since it was pinned waits for an admin to approve the new definition.
import { CheckOutlined, ReloadOutlined } from "@ant-design/icons";
import { App, Badge, Button, Empty, Popconfirm, Space, Table, Tag, Tooltip } from "antd";
import { unwrap } from "../api/client";
import type { McpServer, McpTool } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { McpServerConfigs } from "../config/McpServerConfigs";
import type { Scope } from "../config/config";
import { SourceTag } from "../config/SourceTag";
import { api, useSession } from "../session/store";

const short = (hash: string | null | undefined) => (hash ? hash.replace(/^sha256:/, "").slice(0, 12) : "—");

function Tools({ server }: { server: string }) {
  const t = useT();
  const { message } = App.useApp();
  const tools = useLoad(() => unwrap(api.GET("/api/v1/mcp-servers/{name}/tools", { params: { path: { name: server } } })), [server]);
  const approve = (tool: McpTool) =>
    attempt(
      message,
      () => unwrap(api.POST("/api/v1/mcp-servers/{name}/tools/{tool}/approve", { params: { path: { name: server, tool: tool.name } } })),
      t("mcp.approved", { tool: tool.name }),
    ).then(tools.reload);
  return (
    <>
      <ProblemAlert problem={tools.error} onRetry={() => void tools.reload()} />
      <Table<McpTool>
        rowKey="name"
        size="small"
        loading={tools.loading}
        dataSource={tools.data ?? []}
        pagination={false}
        data-testid={`mcp-tools-${server}`}
        locale={{ emptyText: <Empty description={t("mcp.noTools")} /> }}
        columns={[
          { title: t("mcp.tool"), dataIndex: "name", render: (n: string) => <code>{n}</code> },
          { title: t("designer.description"), dataIndex: "description", ellipsis: true },
          {
            title: t("mcp.annotations"),
            dataIndex: "annotations",
            render: (a: Record<string, unknown>) =>
              Object.entries(a ?? {})
                .filter(([, v]) => v === true)
                .map(([k]) => <Tag key={k}>{k.replace(/Hint$/, "")}</Tag>),
          },
          {
            title: t("mcp.pinned"),
            key: "pinned",
            render: (_, tool) => (
              <Space>
                {tool.changed ? (
                  <Tooltip title={`${short(tool.pinned_hash)} → ${short(tool.definition_hash)}`}>
                    <Tag color="red" data-testid={`mcp-changed-${tool.name}`}>{t("mcp.changed")}</Tag>
                  </Tooltip>
                ) : tool.pinned_hash ? (
                  <Tooltip title={short(tool.pinned_hash)}>
                    <Tag color="green">{t("mcp.pinnedOk")}</Tag>
                  </Tooltip>
                ) : (
                  <Tag>{t("mcp.unpinned")}</Tag>
                )}
                {tool.needs_approval && (
                  <Popconfirm title={t("mcp.approveConfirm", { tool: tool.name })} onConfirm={() => approve(tool)}>
                    <Button size="small" icon={<CheckOutlined />} data-testid={`mcp-approve-${tool.name}`}>{t("mcp.approve")}</Button>
                  </Popconfirm>
                )}
              </Space>
            ),
          },
        ]}
      />
    </>
  );
}

/** The server's scope as the API names it (an older server sends none: the environment's). */
function scopeOf(scope: McpServer["scope"]): Scope {
  return scope === "shared" || scope === "workspace" ? scope : "environment";
}

export function McpTab() {
  const t = useT();
  const servers = useLoad(() => unwrap(api.GET("/api/v1/mcp-servers")), []);
  const manage = useSession((s) => s.me?.permissions.includes("manage") ?? false);
  return (
    <div data-testid="mcp-tab">
      <Button icon={<ReloadOutlined />} onClick={() => void servers.reload()} style={{ marginBottom: 12 }}>{t("common.refresh")}</Button>
      <ProblemAlert problem={servers.error} onRetry={() => void servers.reload()} />
      <Table<McpServer>
        rowKey="name"
        loading={servers.loading}
        dataSource={servers.data ?? []}
        data-testid="mcp-table"
        expandable={{ expandedRowRender: (s) => <Tools server={s.name} /> }}
        locale={{ emptyText: <Empty description={t("mcp.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string) => <b>{n}</b> },
          { title: t("mcp.transport"), dataIndex: "transport", render: (v: string) => <Tag>{v}</Tag> },
          {
            title: t("config.scope"),
            dataIndex: "scope",
            render: (s: McpServer["scope"], m) => <SourceTag scope={scopeOf(s)} testId={`mcp-scope-${m.name}`} />,
          },
          {
            title: t("common.status"),
            dataIndex: "status",
            render: (s: string) => <Badge status={["connected", "healthy", "ok", "open"].includes(s) ? "success" : "default"} text={s} />,
          },
        ]}
      />
      {manage && <McpServerConfigs onChanged={() => void servers.reload()} />}
    </div>
  );
}
