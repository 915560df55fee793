// The workspace's legal holds: what retention keeps whatever its age; admins release them here
// (and set them on an instance's page).
import { App, Button, Empty, Popconfirm, Table } from "antd";
import { Link } from "react-router-dom";
import { unwrap } from "../api/client";
import type { LegalHold } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { subjectLabel, useSubjectNames } from "./subjects";

export function LegalHoldsTable({ workspace }: { workspace: string }) {
  const t = useT();
  const { message } = App.useApp();
  const names = useSubjectNames();
  const manage = useSession((s) => s.me?.permissions.includes("manage") ?? false);
  const holds = useLoad(() => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/legal-holds", { params: { path: { workspace_id: workspace } } })), [workspace]);
  const release = (id: string) =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/processes/instances/{instance_id}/legal-hold", { params: { path: { instance_id: id } } })), t("hold.released")).then(
      holds.reload,
    );
  return (
    <>
      <ProblemAlert problem={holds.error} onRetry={() => void holds.reload()} />
      <Table<LegalHold>
        rowKey="instance_id"
        size="small"
        loading={holds.loading}
        dataSource={holds.data ?? []}
        pagination={false}
        scroll={{ x: "max-content" }}
        data-testid="holds-table"
        locale={{ emptyText: <Empty description={t("hold.empty")} /> }}
        columns={[
          {
            title: t("instances.id"),
            dataIndex: "instance_id",
            render: (id: string) => (
              <Link to={`/instances/${id}`} data-testid={`hold-${id}`} title={id}>
                <code>{id.slice(0, 12)}…</code>
              </Link>
            ),
          },
          { title: t("hold.reason"), dataIndex: "reason", render: (r: string | null) => r ?? <span className="cz-muted">—</span> },
          { title: t("hold.by"), dataIndex: "set_by", render: (s: string | null) => subjectLabel(s, names) },
          { title: t("hold.at"), dataIndex: "set_at", render: (d: number | null) => formatTime(d) },
          {
            key: "actions",
            render: (_, h) =>
              manage && (
                <Popconfirm title={t("hold.releaseConfirm")} onConfirm={() => release(h.instance_id)}>
                  <Button size="small" data-testid={`hold-release-${h.instance_id}`}>{t("hold.release")}</Button>
                </Popconfirm>
              ),
          },
        ]}
      />
    </>
  );
}
