// Registered agents: capabilities, health, load and response times; register, edit, drain, remove.
import { PlusOutlined, ReloadOutlined } from "@ant-design/icons";
import { App, Badge, Button, Empty, Popconfirm, Progress, Space, Table, Tag } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { AgentStatus } from "../api/status";
import type { Agent } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatClock } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";
import { AgentForm } from "./AgentForm";

const HEALTH: Record<AgentStatus, "success" | "error" | "warning" | "default"> = {
  unknown: "default",
  healthy: "success",
  unhealthy: "error",
  draining: "warning",
};

function ms(value: number | undefined): string {
  return value === undefined ? "—" : `${Math.round(value)} ms`;
}

export function AgentsTab() {
  const t = useT();
  const { message } = App.useApp();
  const agents = useLoad(() => unwrap(api.GET("/api/v1/agents")), []);
  const [editing, setEditing] = useState<Agent | null | undefined>(undefined);
  const path = (a: Agent) => ({ params: { path: { agent_id: a.id } } });
  const drain = (a: Agent) =>
    attempt(message, () => unwrap(api.POST("/api/v1/agents/{agent_id}/drain", path(a))), t("agents.drained", { name: a.name })).then(agents.reload);
  const resume = (a: Agent) =>
    attempt(message, () => unwrap(api.POST("/api/v1/agents/{agent_id}/resume", path(a))), t("agents.resumed", { name: a.name })).then(agents.reload);
  const remove = (a: Agent) =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/agents/{agent_id}", path(a))), t("agents.removed", { name: a.name })).then(agents.reload);

  return (
    <div data-testid="agents-tab">
      <Space style={{ marginBottom: 12 }}>
        <Button type="primary" icon={<PlusOutlined />} onClick={() => setEditing(null)} data-testid="agents-register">{t("agents.register")}</Button>
        <Button icon={<ReloadOutlined />} onClick={() => void agents.reload()}>{t("common.refresh")}</Button>
      </Space>
      <ProblemAlert problem={agents.error} onRetry={() => void agents.reload()} />
      <Table<Agent>
        rowKey="id"
        loading={agents.loading}
        dataSource={agents.data ?? []}
        data-testid="agents-table"
        locale={{ emptyText: <Empty description={t("agents.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string) => <b data-testid={`agent-${n}`}>{n}</b> },
          { title: t("agents.type"), dataIndex: "type", render: (v: string) => <Tag>{v}</Tag> },
          { title: t("agents.capabilities"), dataIndex: "capabilities", render: (cs: string[]) => cs.map((c) => <Tag key={c} color="blue">{c}</Tag>) },
          {
            title: t("agents.health"),
            dataIndex: "status",
            render: (s: AgentStatus, a) => <Badge status={HEALTH[s]} text={s} data-testid={`agent-health-${a.name}`} data-status={s} />,
          },
          {
            title: t("agents.load"),
            key: "load",
            render: (_, a) => (
              <Progress
                size="small"
                percent={Math.round((a.outstanding / Math.max(a.capacity, 1)) * 100)}
                format={() => `${a.outstanding}/${a.capacity}`}
                data-testid={`agent-load-${a.name}`}
              />
            ),
          },
          {
            title: t("agents.responseTime"),
            dataIndex: "response_ms",
            render: (r: number | null) => ms(r ?? undefined),
          },
          { title: t("agents.checked"), dataIndex: "last_seen", render: (d: number | null) => formatClock(d) },
          {
            key: "actions",
            render: (_, a) => (
              <Space>
                <Button size="small" onClick={() => setEditing(a)} data-testid={`agent-edit-${a.name}`}>{t("common.edit")}</Button>
                {a.status === "draining" ? (
                  <Button size="small" onClick={() => void resume(a)} data-testid={`agent-resume-${a.name}`}>{t("agents.resume")}</Button>
                ) : (
                  <Popconfirm title={t("agents.drainConfirm", { name: a.name })} onConfirm={() => drain(a)}>
                    <Button size="small" data-testid={`agent-drain-${a.name}`}>{t("agents.drain")}</Button>
                  </Popconfirm>
                )}
                <Popconfirm title={t("agents.removeConfirm", { name: a.name })} onConfirm={() => remove(a)} okButtonProps={{ danger: true }}>
                  <Button size="small" danger data-testid={`agent-remove-${a.name}`}>{t("common.remove")}</Button>
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
      <AgentForm open={editing !== undefined} agent={editing ?? null} onClose={() => setEditing(undefined)} onSaved={() => void agents.reload()} />
    </div>
  );
}
