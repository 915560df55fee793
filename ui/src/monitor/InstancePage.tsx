// One instance: its graph coloured live by task status, tasks, timeline, events, and the
// operations on it (cancel, retry from failure, retry a task).
import { ReloadOutlined, StopOutlined, RedoOutlined } from "@ant-design/icons";
import { ReactFlowProvider } from "@xyflow/react";
import { App, Button, Card, Descriptions, Empty, Popconfirm, Space, Spin, Tabs, Tag, Typography } from "antd";
import { useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { unwrap } from "../api/client";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime, formatClock } from "../components/time";
import { useLoad } from "../components/useLoad";
import { CanvasContext } from "../designer/canvasContext";
import { definitionToCanvas } from "../designer/convert";
import type { Definition } from "../designer/definition";
import { FlowCanvas } from "../designer/FlowCanvas";
import { createNodeRegistry } from "../designer/registry";
import { useT } from "../i18n";
import { LegalHoldControl } from "../operations/LegalHoldControl";
import { api } from "../session/store";
import { InstanceStatusBadge } from "./InstancesPage";
import { OffloadedBlock, PayloadInstance } from "./OffloadedBlock";
import { RedactedNote } from "./RedactedNote";
import { JsonBlock, TaskTable, Timeline } from "./TaskDetails";
import { useLiveInstance } from "./useLiveInstance";

function useGraphOf(processId: string | undefined, version: number | undefined) {
  return useLoad(async () => {
    if (!processId || version === undefined) return null;
    const [catalog, detail] = await Promise.all([
      unwrap(api.GET("/api/v1/node-types")),
      unwrap(api.GET("/api/v1/processes/definitions/{process_id}/versions/{version}", { params: { path: { process_id: processId, version } } })),
    ]);
    const registry = createNodeRegistry(catalog);
    return { registry, canvas: definitionToCanvas(detail.document as unknown as Definition, registry) };
  }, [processId, version]);
}

function Events({ id }: { id: string }) {
  const t = useT();
  const events = useLoad(() => unwrap(api.GET("/api/v1/processes/instances/{instance_id}/events", { params: { path: { instance_id: id } } })), [id]);
  if (events.error) return <ProblemAlert problem={events.error} onRetry={() => void events.reload()} />;
  if (events.loading) return <Spin />;
  const items = events.data ?? [];
  if (items.length === 0) return <Empty description={t("instance.noEvents")} />;
  return (
    <div data-testid="events">
      <Button size="small" icon={<ReloadOutlined />} onClick={() => void events.reload()} style={{ marginBottom: 8 }}>{t("common.refresh")}</Button>
      {items.map((e) => (
        <div key={e.seq} className="cz-event">
          <code>#{e.seq}</code> <Tag>{e.type}</Tag> <span className="cz-muted">{formatClock(e.occurred_at)}</span>
          <code className="cz-clip">{JSON.stringify(e.data)}</code>
        </div>
      ))}
    </div>
  );
}

export default function InstancePage() {
  const t = useT();
  const { message } = App.useApp();
  const { instanceId = "" } = useParams();
  const live = useLiveInstance(instanceId);
  const detail = live.detail;
  const graph = useGraphOf(detail?.process_id, detail?.version);
  const [selected, setSelected] = useState<string | null>(null);
  const info = useMemo(() => (graph.data ? { registry: graph.data.registry, statuses: live.statuses, readOnly: true } : null), [graph.data, live.statuses]);

  if (live.error && !detail) return <ProblemAlert problem={live.error} onRetry={() => void live.reload()} />;
  if (!detail) return <Spin style={{ display: "block", margin: 80 }} />;

  const path = { params: { path: { instance_id: instanceId } } };
  const cancel = () => attempt(message, () => unwrap(api.POST("/api/v1/processes/instances/{instance_id}/cancel", path)), t("instance.cancelled")).then(live.reload);
  const retry = () => attempt(message, () => unwrap(api.POST("/api/v1/processes/instances/{instance_id}/retry", path)), t("instance.retried")).then(live.reload);

  return (
    <PayloadInstance.Provider value={detail.id}>
    <div data-testid="instance-page">
      <Space style={{ width: "100%", justifyContent: "space-between" }} wrap>
        <Space align="center" wrap>
          <Typography.Title level={4} style={{ margin: 0 }}>
            <code>{detail.id}</code>
          </Typography.Title>
          <InstanceStatusBadge status={detail.status} />
          <RedactedNote redacted={detail.redacted} testId="instance-redacted" />
          <Tag color={live.streaming ? "green" : "default"} data-testid="instance-live">{live.streaming ? t("instance.live") : t("instance.polling")}</Tag>
        </Space>
        <Space>
          <LegalHoldControl instanceId={detail.id} />
          <Button icon={<ReloadOutlined />} onClick={() => void live.reload()}>{t("common.refresh")}</Button>
          {detail.status === "failed" && (
            <Popconfirm title={t("instance.retryConfirm")} onConfirm={retry}>
              <Button icon={<RedoOutlined />} data-testid="instance-retry">{t("instance.retry")}</Button>
            </Popconfirm>
          )}
          {detail.status === "running" && (
            <Popconfirm title={t("instance.cancelConfirm")} onConfirm={cancel} okButtonProps={{ danger: true }}>
              <Button danger icon={<StopOutlined />} data-testid="instance-cancel">{t("instance.cancel")}</Button>
            </Popconfirm>
          )}
        </Space>
      </Space>
      <Descriptions size="small" column={{ xs: 1, md: 3 }} style={{ margin: "12px 0" }}>
        <Descriptions.Item label={t("instances.process")}>
          <Link to={`/processes/${detail.process_id}?version=${detail.version}`}>{detail.process_id} v{detail.version}</Link>
        </Descriptions.Item>
        <Descriptions.Item label={t("common.created")}>{formatTime(detail.created_at)}</Descriptions.Item>
        <Descriptions.Item label={t("common.updated")}>{formatTime(detail.updated_at)}</Descriptions.Item>
      </Descriptions>
      {detail.error && <ProblemAlert problem={{ type: "about:blank", title: t("instance.failed"), status: 0, detail: detail.error }} />}
      {detail.error_payload && <OffloadedBlock marker={detail.error_payload} testId="instance-error-offloaded" />}
      <Card size="small" className="cz-instance-graph" data-testid="instance-graph">
        <ProblemAlert problem={graph.error} onRetry={() => void graph.reload()} />
        {graph.loading && <Spin />}
        {info && graph.data && (
          <CanvasContext.Provider value={info}>
            <ReactFlowProvider>
              <FlowCanvas nodes={graph.data.canvas.nodes} edges={graph.data.canvas.edges} onSelect={setSelected} fitOnInit />
            </ReactFlowProvider>
          </CanvasContext.Provider>
        )}
      </Card>
      <Tabs
        style={{ marginTop: 12 }}
        items={[
          {
            key: "tasks",
            label: selected ? t("instance.tasksOf", { node: selected }) : t("instance.tasks"),
            children: <TaskTable tasks={detail.tasks} onChanged={() => void live.reload()} filterNode={selected} />,
          },
          { key: "timeline", label: t("instance.timeline"), children: <Timeline tasks={detail.tasks} /> },
          {
            key: "io",
            label: t("instance.io"),
            children: (
              <div className="cz-task-detail">
                <div><b>{t("instance.inputs")}</b><JsonBlock value={detail.inputs} /></div>
                <div><b>{t("instance.outputs")}</b><JsonBlock value={detail.outputs} testId="instance-outputs" /></div>
              </div>
            ),
          },
          { key: "events", label: t("instance.events"), children: <Events id={detail.id} /> },
        ]}
      />
    </div>
    </PayloadInstance.Provider>
  );
}
