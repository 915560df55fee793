// Usage against limits per workspace; system admins edit a workspace's own limits.
import { ReloadOutlined } from "@ant-design/icons";
import { Alert, Button, Card, Select, Space, Spin } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { QuotaForm } from "./QuotaForm";
import { UsageBars } from "./UsageBars";

function useWorkspaceChoices(system: boolean) {
  const mine = useSession((s) => s.me?.workspaces ?? []);
  const all = useLoad(() => (system ? unwrap(api.GET("/api/v1/workspaces")) : Promise.resolve(null)), [system]);
  return (all.data ?? mine).map((w) => ({ value: w.id, label: w.name }));
}

export function QuotasTab() {
  const t = useT();
  const current = useSession((s) => s.workspace) ?? "default";
  const system = useSession((s) => s.me?.permissions.includes("system") ?? false);
  const choices = useWorkspaceChoices(system);
  const [workspace, setWorkspace] = useState(current);
  const path = { params: { path: { workspace_id: workspace } } };
  const quotas = useLoad(() => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/quotas", path)), [workspace]);
  const usage = useLoad(() => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/usage", path)), [workspace]);
  const reload = () => Promise.all([quotas.reload(), usage.reload()]);

  return (
    <div data-testid="quotas-tab">
      <Space style={{ marginBottom: 12 }} wrap>
        <Select style={{ minWidth: 200 }} value={workspace} onChange={setWorkspace} options={choices} data-testid="quota-workspace" />
        <Button icon={<ReloadOutlined />} onClick={() => void reload()} data-testid="quota-reload">{t("common.refresh")}</Button>
      </Space>
      <div className="cz-quota-cards">
        <Card size="small" title={t("quota.usage")}>
          <ProblemAlert problem={usage.error} onRetry={() => void usage.reload()} />
          {usage.data ? <UsageBars usage={usage.data} /> : usage.loading && <Spin />}
        </Card>
        <Card size="small" title={t("quota.limits")}>
          {!system && <Alert type="info" showIcon message={t("quota.adminsOnly")} style={{ marginBottom: 12 }} />}
          <ProblemAlert problem={quotas.error} onRetry={() => void quotas.reload()} />
          {quotas.data ? (
            <QuotaForm quotas={quotas.data} editable={system} onSaved={(q) => { quotas.set(q); void usage.reload(); }} />
          ) : (
            quotas.loading && <Spin />
          )}
        </Card>
      </div>
    </div>
  );
}
