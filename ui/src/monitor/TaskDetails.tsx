// The tasks of an instance: a table with each task's input, output, error, attempts, tokens and
// cost, a retry for failed tasks, and a timeline.
import { RedoOutlined } from "@ant-design/icons";
import { App, Button, Empty, Popconfirm, Table, Tag, Tooltip } from "antd";
import { unwrap } from "../api/client";
import type { TaskInfo } from "../api/types";
import { attempt } from "../components/feedback";
import { useT } from "../i18n";
import { api } from "../session/store";
import { formatClock } from "../components/time";
import { OffloadedBlock } from "./OffloadedBlock";
import { blobMarker } from "./payload";
import { RedactedNote } from "./RedactedNote";
import { statusColor } from "./status";
import { timelineBars } from "./timeline";

export function JsonBlock({ value, testId }: { value: unknown; testId?: string }) {
  if (value === undefined || value === null) return <span className="cz-muted">—</span>;
  const marker = blobMarker(value);
  if (marker) return <OffloadedBlock marker={marker} testId={testId} />;
  return (
    <pre className="cz-json" data-testid={testId}>
      {typeof value === "string" ? value : JSON.stringify(value, null, 2)}
    </pre>
  );
}

function usageText(usage: Record<string, unknown> | undefined): string {
  if (!usage) return "";
  const parts: string[] = [];
  if (usage["tokens"] !== undefined) parts.push(`${String(usage["tokens"])} tok`);
  if (typeof usage["cost"] === "number") parts.push(`$${usage["cost"].toFixed(4)}`);
  return parts.join(" · ");
}

export function TaskTable({ tasks, onChanged, filterNode }: { tasks: TaskInfo[]; onChanged: () => void; filterNode?: string | null }) {
  const t = useT();
  const { message } = App.useApp();
  const rows = filterNode ? tasks.filter((task) => task.node_id === filterNode) : tasks;
  const retry = (task: TaskInfo) =>
    attempt(
      message,
      () => unwrap(api.POST("/api/v1/execution/tasks/{task_id}/retry", { params: { path: { task_id: task.id } } })),
      t("tasks.retried", { node: task.node_id }),
    ).then(onChanged);
  return (
    <Table<TaskInfo>
      rowKey="id"
      size="small"
      dataSource={rows}
      pagination={rows.length > 50 ? { pageSize: 50 } : false}
      data-testid="tasks-table"
      locale={{ emptyText: <Empty description={t("tasks.empty")} /> }}
      expandable={{
        expandedRowRender: (task) => (
          <div className="cz-task-detail">
            <div><b>{t("tasks.detail")}</b><JsonBlock value={task.detail} /></div>
            <div><b>{t("tasks.output")}</b><JsonBlock value={task.output} testId={`task-output-${task.node_id}`} /></div>
            {task.error && (
              <div>
                <b>{t("tasks.error")}</b>
                {task.error_payload ? (
                  <OffloadedBlock marker={task.error_payload} testId={`task-error-${task.node_id}`} />
                ) : (
                  <JsonBlock value={task.error} />
                )}
              </div>
            )}
            <div><b>{t("tasks.usage")}</b><JsonBlock value={task.usage} /></div>
          </div>
        ),
      }}
      columns={[
        { title: t("tasks.node"), dataIndex: "node_id", render: (n: string, task) => <span data-testid={`task-row-${n}`}>{n} <Tag>{task.node_type}</Tag> <RedactedNote redacted={task.redacted} testId={`task-redacted-${n}`} /></span> },
        { title: t("common.status"), dataIndex: "status", render: (s: string) => <Tag color={statusColor(s)}>{s}</Tag> },
        { title: t("tasks.attempt"), dataIndex: "attempt" },
        { title: t("tasks.usage"), dataIndex: "usage", render: (u: Record<string, unknown> | null | undefined) => usageText(u ?? undefined) },
        { title: t("tasks.error"), dataIndex: "error", ellipsis: true, render: (e?: string | null) => (e ? <Tooltip title={e}>{e}</Tooltip> : "") },
        { title: t("common.updated"), dataIndex: "updated_at", render: (d: number) => formatClock(d) },
        {
          key: "actions",
          render: (_, task) =>
            task.status === "failed" ? (
              <Popconfirm title={t("tasks.retryConfirm", { node: task.node_id })} onConfirm={() => retry(task)}>
                <Button size="small" icon={<RedoOutlined />} data-testid={`task-retry-${task.node_id}`}>{t("common.retry")}</Button>
              </Popconfirm>
            ) : null,
        },
      ]}
    />
  );
}

export function Timeline({ tasks }: { tasks: TaskInfo[] }) {
  const t = useT();
  const { bars, span } = timelineBars(tasks, Date.now());
  if (bars.length === 0) return <Empty description={t("tasks.empty")} />;
  return (
    <div className="cz-timeline" data-testid="timeline">
      <div className="cz-muted" style={{ marginBottom: 8 }}>{t("tasks.span", { seconds: span.toFixed(2) })}</div>
      {bars.map((bar) => (
        <div className="cz-timeline-row" key={bar.id}>
          <div className="cz-timeline-label" title={bar.label}>{bar.label}</div>
          <div className="cz-timeline-track">
            <Tooltip title={`${bar.status} · ${bar.seconds.toFixed(2)} s`}>
              <div className="cz-timeline-bar" style={{ left: `${bar.left}%`, width: `${bar.width}%`, background: statusColor(bar.status) }} />
            </Tooltip>
          </div>
        </div>
      ))}
    </div>
  );
}
