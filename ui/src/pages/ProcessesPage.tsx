// The processes of the workspace; start a new one or import one from YAML.
import { PlusOutlined, UploadOutlined } from "@ant-design/icons";
import { App, Button, Empty, Input, Space, Table, Typography } from "antd";
import { useRef, useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { unwrap } from "../api/client";
import type { DefinitionStatus } from "../api/status";
import type { ProcessSummary } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { VersionStatusTag } from "../components/VersionStatusTag";
import { parseDefinition } from "../designer/yamlio";
import { useT } from "../i18n";
import { formatTime } from "../components/time";
import { api } from "../session/store";

export default function ProcessesPage() {
  const t = useT();
  const { message } = App.useApp();
  const navigate = useNavigate();
  const file = useRef<HTMLInputElement>(null);
  const [filter, setFilter] = useState("");
  const processes = useLoad(() => unwrap(api.GET("/api/v1/processes/definitions")), []);
  const items = (processes.data ?? []).filter(
    (p) => !filter || `${p.process_id} ${p.name ?? ""}`.toLowerCase().includes(filter.toLowerCase()),
  );

  const onImport = async (chosen: File) => {
    const parsed = parseDefinition(await chosen.text());
    if ("error" in parsed) void message.error(t("designer.importFailed", { reason: parsed.error }), 8);
    else navigate("/processes/new", { state: { doc: parsed.doc } });
  };

  return (
    <div data-testid="processes-page">
      <Space style={{ width: "100%", justifyContent: "space-between", marginBottom: 16 }} wrap>
        <Typography.Title level={3} style={{ margin: 0 }}>
          {t("nav.processes")}
        </Typography.Title>
        <Space wrap>
          <Input.Search allowClear placeholder={t("common.search")} onChange={(e) => setFilter(e.target.value)} data-testid="processes-search" />
          <Button icon={<UploadOutlined />} onClick={() => file.current?.click()} data-testid="processes-import">
            {t("designer.import")}
          </Button>
          <Button type="primary" icon={<PlusOutlined />} onClick={() => navigate("/processes/new")} data-testid="processes-new">
            {t("processes.new")}
          </Button>
        </Space>
      </Space>
      <input
        ref={file}
        type="file"
        accept=".yaml,.yml,.json"
        style={{ display: "none" }}
        data-testid="processes-import-file"
        onChange={(e) => {
          const chosen = e.target.files?.[0];
          if (chosen) void onImport(chosen);
          e.target.value = "";
        }}
      />
      <ProblemAlert problem={processes.error} onRetry={() => void processes.reload()} />
      <Table<ProcessSummary>
        rowKey="process_id"
        loading={processes.loading}
        dataSource={items}
        data-testid="processes-table"
        locale={{
          emptyText: (
            <Empty description={t("processes.empty")}>
              <Button type="primary" onClick={() => navigate("/processes/new")}>
                {t("processes.new")}
              </Button>
            </Empty>
          ),
        }}
        columns={[
          {
            title: t("processes.id"),
            dataIndex: "process_id",
            render: (id: string) => (
              <Link to={`/processes/${id}`} data-testid={`process-${id}`}>
                {id}
              </Link>
            ),
          },
          { title: t("processes.name"), dataIndex: "name" },
          { title: t("processes.latest"), dataIndex: "version", render: (v: number) => `v${v}` },
          {
            title: t("common.status"),
            dataIndex: "status",
            render: (s: DefinitionStatus) => <VersionStatusTag status={s} />,
          },
          { title: t("common.updated"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          {
            key: "instances",
            render: (_, p) => <Link to={`/instances?process_id=${encodeURIComponent(p.process_id)}`}>{t("nav.instances")}</Link>,
          },
        ]}
      />
    </div>
  );
}
