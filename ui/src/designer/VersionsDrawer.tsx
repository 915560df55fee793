// Version history of a process: open a version, publish a draft, diff two versions.
import { Button, Drawer, Empty, Popconfirm, Select, Space, Table, Tag, Typography } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { DefinitionStatus } from "../api/status";
import type { DiffResult, VersionInfo } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { VersionStatusTag } from "../components/VersionStatusTag";
import { useT } from "../i18n";
import { api } from "../session/store";

interface Props {
  open: boolean;
  processId: string;
  onClose: () => void;
  onOpenVersion: (version: number) => void;
  onPublish: (version: VersionInfo) => Promise<unknown>;
}

const show = (value: unknown) => (value === undefined ? "—" : JSON.stringify(value));

export function VersionsDrawer({ open, processId, onClose, onOpenVersion, onPublish }: Props) {
  const t = useT();
  const versions = useLoad(
    () =>
      open
        ? unwrap(api.GET("/api/v1/processes/definitions/{process_id}/versions", { params: { path: { process_id: processId } } }))
        : Promise.resolve([] as VersionInfo[]),
    [open, processId],
  );
  const [from, setFrom] = useState<number>();
  const [to, setTo] = useState<number>();
  const [diff, setDiff] = useState<DiffResult | null>(null);
  const [diffProblem, setDiffProblem] = useState<Problem | null>(null);
  const list = [...(versions.data ?? [])].sort((a, b) => b.version - a.version);
  const options = list.map((v) => ({ value: v.version, label: `v${v.version}` }));

  const compare = async () => {
    if (from === undefined || to === undefined) return;
    setDiffProblem(null);
    try {
      setDiff(
        await unwrap(
          api.GET("/api/v1/processes/definitions/{process_id}/diff", {
            params: { path: { process_id: processId }, query: { from, to } },
          }),
        ),
      );
    } catch (failure) {
      setDiffProblem(problemOf(failure));
    }
  };

  return (
    <Drawer open={open} onClose={onClose} width={640} title={t("versions.title", { id: processId })} data-testid="versions-drawer">
      <ProblemAlert problem={versions.error} onRetry={() => void versions.reload()} />
      <Table<VersionInfo>
        rowKey="version"
        size="small"
        loading={versions.loading}
        dataSource={list}
        pagination={false}
        locale={{ emptyText: <Empty description={t("versions.empty")} /> }}
        columns={[
          { title: t("versions.version"), dataIndex: "version", render: (v: number) => `v${v}` },
          { title: t("common.status"), dataIndex: "status", render: (s: DefinitionStatus) => <VersionStatusTag status={s} /> },
          { title: t("versions.hash"), dataIndex: "content_hash", render: (h: string) => <code>{h.slice(7, 19)}</code> },
          { title: t("common.created"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          {
            key: "actions",
            render: (_, v) => (
              <Space>
                <Button size="small" onClick={() => onOpenVersion(v.version)} data-testid={`version-open-${v.version}`}>
                  {t("common.open")}
                </Button>
                {v.status === "draft" && (
                  <Popconfirm title={t("versions.publishConfirm", { version: v.version })} onConfirm={async () => { await onPublish(v); await versions.reload(); }}>
                    <Button size="small" type="primary" data-testid={`version-publish-${v.version}`}>
                      {t("designer.publish")}
                    </Button>
                  </Popconfirm>
                )}
              </Space>
            ),
          },
        ]}
      />
      <Typography.Title level={5} style={{ marginTop: 24 }}>
        {t("versions.diff")}
      </Typography.Title>
      <Space wrap>
        <Select style={{ width: 100 }} placeholder={t("versions.from")} options={options} value={from} onChange={setFrom} data-testid="diff-from" />
        <Select style={{ width: 100 }} placeholder={t("versions.to")} options={options} value={to} onChange={setTo} data-testid="diff-to" />
        <Button onClick={compare} disabled={from === undefined || to === undefined} data-testid="diff-run">
          {t("versions.compare")}
        </Button>
      </Space>
      <div style={{ marginTop: 12 }}>
        <ProblemAlert problem={diffProblem} />
        {diff && (
          <Table
            size="small"
            rowKey={(c) => `${c.kind}:${c.path}`}
            dataSource={diff.changes}
            pagination={false}
            data-testid="diff-table"
            locale={{ emptyText: t("versions.noChanges") }}
            columns={[
              { title: t("versions.path"), dataIndex: "path", render: (p: string) => <code>{p}</code> },
              { title: t("versions.change"), dataIndex: "kind", render: (kind: string) => <Tag color={kind === "added" ? "green" : kind === "removed" ? "red" : "orange"}>{kind}</Tag> },
              { title: t("versions.before"), dataIndex: "before", render: (v: unknown) => <code className="cz-clip">{show(v)}</code> },
              { title: t("versions.after"), dataIndex: "after", render: (v: unknown) => <code className="cz-clip">{show(v)}</code> },
            ]}
          />
        )}
      </div>
    </Drawer>
  );
}
