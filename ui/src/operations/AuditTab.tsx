// The audit log (admins): newest first, filtered, paged by cursor, a row's diff in a drawer,
// and an export of every matching row as JSON lines.
import { App, Button, Empty, Table, Tag, Tooltip } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { AuditEntry } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";
import { actorLabel, auditQuery, type AuditFilters } from "./audit";
import { AuditDrawer } from "./AuditDrawer";
import { AuditFilterBar } from "./AuditFilterBar";
import { exportName, saveBlob } from "./download";
import { useSubjectNames } from "./subjects";

const PAGE = 50;

export function AuditTab() {
  const t = useT();
  const { message } = App.useApp();
  const [filters, setFilters] = useState<AuditFilters>({});
  const [more, setMore] = useState<AuditEntry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [exporting, setExporting] = useState(false);
  const [open, setOpen] = useState<AuditEntry | null>(null);
  const names = useSubjectNames();
  const query = auditQuery(filters, PAGE);
  const page = useLoad(async () => {
    const result = await unwrap(api.GET("/api/v1/audit", { params: { query } }));
    setMore([]);
    setCursor(result.next_cursor);
    return result;
  }, [JSON.stringify(query)]);

  const loadMore = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    const result = await attempt(message, () => unwrap(api.GET("/api/v1/audit", { params: { query: { ...query, cursor } } })));
    if (result) {
      setMore((m) => [...m, ...result.items]);
      setCursor(result.next_cursor);
    }
    setLoadingMore(false);
  };
  const download = async () => {
    setExporting(true);
    const { limit: _, ...filtersOnly } = query;
    const blob = await attempt(message, () => unwrap(api.GET("/api/v1/audit/export", { params: { query: filtersOnly }, parseAs: "blob" })));
    if (blob) saveBlob(blob, exportName("audit", new Date(), "jsonl"));
    setExporting(false);
  };
  const filterBy = (next: AuditFilters) => setFilters({ ...filters, ...next });

  return (
    <div data-testid="audit-tab">
      <AuditFilterBar value={filters} onChange={setFilters} onReload={() => void page.reload()} onExport={() => void download()} exporting={exporting} />
      <ProblemAlert problem={page.error} onRetry={() => void page.reload()} />
      <Table<AuditEntry>
        rowKey="id"
        size="small"
        loading={page.loading}
        dataSource={[...(page.data?.items ?? []), ...more]}
        pagination={false}
        data-testid="audit-table"
        locale={{ emptyText: <Empty description={t("audit.empty")} /> }}
        onRow={(entry) => ({ onClick: () => setOpen(entry), style: { cursor: "pointer" } })}
        columns={[
          { title: t("audit.at"), dataIndex: "at", render: (d: number) => formatTime(d), width: 180 },
          {
            title: t("audit.actor"),
            key: "actor",
            render: (_, e) => (
              <Tooltip title={`${e.actor_id ?? ""} · ${t("audit.filterThis")}`}>
                <a onClick={(ev) => { ev.stopPropagation(); if (e.actor_id) filterBy({ actor: e.actor_id }); }} data-testid="audit-actor">{actorLabel(e, names)}</a>
              </Tooltip>
            ),
          },
          {
            title: t("audit.action"),
            dataIndex: "action",
            render: (a: string, e) => <span data-testid="audit-action" data-id={e.id}><Tag color={e.outcome === "ok" ? "blue" : "red"}>{a}</Tag></span>,
          },
          {
            title: t("audit.target"),
            key: "target",
            render: (_, e) => (
              <a onClick={(ev) => { ev.stopPropagation(); filterBy({ target_type: e.target_type, target_id: e.target_id }); }}>
                {e.target_type} / <code>{e.target_id}</code>
              </a>
            ),
          },
          { title: t("header.workspace"), dataIndex: "workspace_id", render: (w: string | null) => w ?? <span className="cz-muted">{t("audit.system")}</span> },
          { title: t("audit.clientIp"), dataIndex: "client_ip", render: (ip: string | null) => ip ?? "—" },
        ]}
      />
      {cursor && (
        <Button block style={{ marginTop: 12 }} loading={loadingMore} onClick={() => void loadMore()} data-testid="audit-more">
          {t("common.loadMore")}
        </Button>
      )}
      <AuditDrawer entry={open} names={names} onClose={() => setOpen(null)} />
    </div>
  );
}
