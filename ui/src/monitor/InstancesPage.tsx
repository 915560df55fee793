// Process instances with filters (status, process, search) and cursor paging.
import { ReloadOutlined } from "@ant-design/icons";
import { Badge, Button, Empty, Input, Select, Space, Table, Typography } from "antd";
import { useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { unwrap } from "../api/client";
import { INSTANCE_STATUSES, isOneOf, type InstanceStatus } from "../api/status";
import type { InstanceQuery, InstanceSummary } from "../api/types";
import { formatTime } from "../components/time";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";
import { INSTANCE_COLORS } from "./status";

const PAGE = 50;

export function InstanceStatusBadge({ status }: { status: InstanceStatus }) {
  return <Badge status={INSTANCE_COLORS[status]} text={status} data-testid="instance-status" data-status={status} />;
}

export default function InstancesPage() {
  const t = useT();
  const [search, setSearch] = useSearchParams();
  const [more, setMore] = useState<InstanceSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const query: InstanceQuery = { limit: PAGE };
  // a status the API does not know (an old or edited link) filters nothing
  const raw = search.get("status");
  const status = isOneOf(INSTANCE_STATUSES, raw) ? raw : undefined;
  if (status) query.status = status;
  if (search.get("process_id")) query.process_id = search.get("process_id") as string;
  if (search.get("q")) query.q = search.get("q") as string;
  const key = search.toString();
  const page = useLoad(async () => {
    const result = await unwrap(api.GET("/api/v1/processes/instances", { params: { query } }));
    setMore([]);
    setCursor(result.next_cursor ?? null);
    return result;
  }, [key]);
  const [loadingMore, setLoadingMore] = useState(false);

  const set = (name: string, value: string | undefined) => {
    const next = new URLSearchParams(search);
    if (value) next.set(name, value);
    else next.delete(name);
    setSearch(next);
  };
  const loadMore = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    try {
      const result = await unwrap(api.GET("/api/v1/processes/instances", { params: { query: { ...query, cursor } } }));
      setMore((m) => [...m, ...result.items]);
      setCursor(result.next_cursor ?? null);
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <div data-testid="instances-page">
      <Typography.Title level={3}>{t("nav.instances")}</Typography.Title>
      <Space wrap style={{ marginBottom: 16 }}>
        <Select
          allowClear
          style={{ width: 160 }}
          placeholder={t("common.status")}
          value={status}
          onChange={(v?: string) => set("status", v)}
          options={INSTANCE_STATUSES.map((s) => ({ value: s, label: s }))}
          data-testid="instances-status"
        />
        <Input.Search
          allowClear
          placeholder={t("instances.process")}
          defaultValue={search.get("process_id") ?? ""}
          onSearch={(v) => set("process_id", v || undefined)}
          data-testid="instances-process"
        />
        <Input.Search
          allowClear
          placeholder={t("common.search")}
          defaultValue={search.get("q") ?? ""}
          onSearch={(v) => set("q", v || undefined)}
          data-testid="instances-q"
        />
        <Button icon={<ReloadOutlined />} onClick={() => void page.reload()} data-testid="instances-reload">
          {t("common.refresh")}
        </Button>
      </Space>
      <ProblemAlert problem={page.error} onRetry={() => void page.reload()} />
      <Table<InstanceSummary>
        rowKey="id"
        loading={page.loading}
        dataSource={[...(page.data?.items ?? []), ...more]}
        pagination={false}
        data-testid="instances-table"
        locale={{ emptyText: <Empty description={t("instances.empty")} /> }}
        columns={[
          { title: t("instances.id"), dataIndex: "id", render: (id: string) => <Link to={`/instances/${id}`} data-testid={`instance-${id}`}><code>{id}</code></Link> },
          { title: t("instances.process"), dataIndex: "process_id", render: (p: string, i) => `${p} v${i.version}` },
          { title: t("common.status"), dataIndex: "status", render: (s: InstanceStatus) => <InstanceStatusBadge status={s} /> },
          { title: t("common.created"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          { title: t("common.updated"), dataIndex: "updated_at", render: (d: number) => formatTime(d) },
        ]}
      />
      {cursor && (
        <Button block style={{ marginTop: 12 }} loading={loadingMore} onClick={() => void loadMore()} data-testid="instances-more">
          {t("common.loadMore")}
        </Button>
      )}
    </div>
  );
}
