// One audit row: who, when, from where, and its before/after summaries as a diff.
import { Descriptions, Drawer, Empty, Table, Tag } from "antd";
import type { AuditEntry } from "../api/types";
import { formatTime } from "../components/time";
import { useT } from "../i18n";
import { actorLabel, diffRows, showValue, type Change, type DiffRow } from "./audit";

const COLORS: Record<Change, string | undefined> = { added: "green", removed: "red", changed: "orange", same: undefined };

interface Props {
  entry: AuditEntry | null;
  names: ReadonlyMap<string, string>;
  onClose: () => void;
}

export function AuditDrawer({ entry, names, onClose }: Props) {
  const t = useT();
  const rows = entry ? diffRows(entry.before, entry.after) : [];
  return (
    <Drawer open={entry !== null} onClose={onClose} width={640} title={entry ? `#${entry.id} ${entry.action}` : ""} data-testid="audit-drawer">
      {entry && (
        <>
          <Descriptions size="small" column={1} bordered style={{ marginBottom: 16 }}>
            <Descriptions.Item label={t("audit.at")}>{formatTime(entry.at)}</Descriptions.Item>
            <Descriptions.Item label={t("audit.actor")}>
              {actorLabel(entry, names)} {entry.actor_id && <code className="cz-muted">{entry.actor_id}</code>}
            </Descriptions.Item>
            <Descriptions.Item label={t("audit.target")}>
              {entry.target_type} / <code>{entry.target_id}</code>
            </Descriptions.Item>
            <Descriptions.Item label={t("header.workspace")}>{entry.workspace_id ?? t("audit.system")}</Descriptions.Item>
            <Descriptions.Item label={t("audit.outcome")}>
              <Tag color={entry.outcome === "ok" ? "green" : "red"}>{entry.outcome}</Tag>
            </Descriptions.Item>
            <Descriptions.Item label={t("audit.requestId")}><code>{entry.request_id ?? "—"}</code></Descriptions.Item>
            <Descriptions.Item label={t("audit.clientIp")}>{entry.client_ip ?? "—"}</Descriptions.Item>
          </Descriptions>
          <Table<DiffRow>
            rowKey="path"
            size="small"
            pagination={false}
            dataSource={rows}
            data-testid="audit-diff"
            locale={{ emptyText: <Empty description={t("audit.noDiff")} /> }}
            rowClassName={(r) => `cz-diff-${r.change}`}
            columns={[
              { title: t("audit.field"), dataIndex: "path", render: (p: string, r) => <span data-testid={`audit-diff-${p}`} data-change={r.change}><code>{p}</code></span> },
              { title: t("audit.before"), dataIndex: "before", render: (v: unknown) => <code className="cz-diff-old">{showValue(v)}</code> },
              { title: t("audit.after"), dataIndex: "after", render: (v: unknown) => <code className="cz-diff-new">{showValue(v)}</code> },
              { key: "change", render: (_, r) => (r.change === "same" ? null : <Tag color={COLORS[r.change]}>{t(`audit.${r.change}`)}</Tag>) },
            ]}
          />
        </>
      )}
    </Drawer>
  );
}
