// The process designer: palette, canvas, inspector, and the toolbar that validates, saves,
// publishes, versions, imports/exports and runs the process, then shows the run live.
import {
  CheckCircleOutlined, CloudUploadOutlined, DownloadOutlined, HistoryOutlined,
  PlayCircleOutlined, SaveOutlined, UploadOutlined,
} from "@ant-design/icons";
import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import { Alert, App, Button, Popconfirm, Space, Spin, Tag, Tooltip, Typography } from "antd";
import { useEffect, useRef, useState } from "react";
import { Link, useLocation, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { unwrap } from "../api/client";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { VERSION_COLORS } from "../components/VersionStatusTag";
import { useT } from "../i18n";
import { useLiveInstance } from "../monitor/useLiveInstance";
import { api } from "../session/store";
import { exportYaml, importYaml, publish, save, validate } from "./actions";
import { CanvasContext } from "./canvasContext";
import type { FlowNode } from "./convert";
import { emptyDefinition, type Definition } from "./definition";
import { FlowCanvas } from "./FlowCanvas";
import { Inspector } from "./Inspector";
import { Palette } from "./Palette";
import { createNodeRegistry } from "./registry";
import { RunModal } from "./RunModal";
import { dropTarget, useGraph } from "./store";
import { VersionsDrawer } from "./VersionsDrawer";

function useDocument(processId: string | undefined, version: string | null) {
  return useLoad(async () => {
    if (!processId) return null;
    const path = { process_id: processId };
    let number = version ? Number(version) : NaN;
    if (Number.isNaN(number)) {
      const versions = await unwrap(api.GET("/api/v1/processes/definitions/{process_id}/versions", { params: { path } }));
      number = Math.max(...versions.map((v) => v.version));
    }
    return unwrap(
      api.GET("/api/v1/processes/definitions/{process_id}/versions/{version}", { params: { path: { ...path, version: number } } }),
    );
  }, [processId, version]);
}

function Workspace({ liveId }: { liveId: string | null }) {
  const graph = useGraph();
  const flow = useReactFlow<FlowNode>();
  const live = useLiveInstance(liveId);
  // A replaced graph (loaded, imported) is shown whole.
  useEffect(() => {
    const timer = setTimeout(() => {
      if (useGraph.getState().nodes.length > 0) void flow.fitView({ padding: 0.15, maxZoom: 1 });
    }, 80);
    return () => clearTimeout(timer);
  }, [graph.revision, flow]);
  const addAt = (type: string, point: { x: number; y: number }) => {
    const containers = graph.nodes
      .filter((n) => n.type === "container")
      .map((n) => {
        const internal = flow.getInternalNode(n.id);
        const at = internal?.internals.positionAbsolute ?? n.position;
        let depth = 0;
        for (let p = n.parentId; p; p = graph.nodes.find((x) => x.id === p)?.parentId) depth += 1;
        return { id: n.id, x: at.x, y: at.y, width: n.measured?.width ?? 320, height: n.measured?.height ?? 180, depth };
      });
    const target = dropTarget(containers, point);
    graph.addNode(type, target.position, target.parentId);
  };
  const addFree = (type: string) => {
    const xs = graph.nodes.filter((n) => !n.parentId).map((n) => n.position.x);
    addAt(type, { x: xs.length ? Math.max(...xs) + 280 : 0, y: 0 });
  };
  return (
    <CanvasContext.Provider value={{ registry: graph.registry, problems: graph.problems, statuses: liveId ? live.statuses : undefined }}>
      <div className="cz-designer">
        <Palette registry={graph.registry} onAdd={addFree} />
        <FlowCanvas
          nodes={graph.nodes}
          edges={graph.edges}
          onNodesChange={graph.onNodesChange}
          onEdgesChange={graph.onEdgesChange}
          onConnect={graph.connect}
          isValidConnection={graph.canConnect}
          onSelect={graph.select}
          onDropType={addAt}
        />
        <Inspector />
      </div>
    </CanvasContext.Provider>
  );
}

function RunBanner({ id, onClose }: { id: string; onClose: () => void }) {
  const t = useT();
  const live = useLiveInstance(id);
  const status = live.detail?.status ?? "running";
  return (
    <Alert
      data-testid="run-banner"
      data-status={status}
      type={status === "completed" ? "success" : status === "failed" ? "error" : "info"}
      showIcon
      closable
      onClose={onClose}
      message={
        <Space>
          {t("run.watching")} <Link to={`/instances/${id}`} data-testid="run-instance-link">{id}</Link>
          <Tag>{status}</Tag>
        </Space>
      }
    />
  );
}

export default function DesignerPage() {
  const t = useT();
  const { message } = App.useApp();
  const navigate = useNavigate();
  const location = useLocation();
  const { processId } = useParams();
  const [search, setSearch] = useSearchParams();
  const catalog = useLoad(() => unwrap(api.GET("/api/v1/node-types")), []);
  const loaded = useDocument(processId, search.get("version"));
  const { saved, dirty, meta } = useGraph();
  const [runOpen, setRunOpen] = useState(false);
  const [versionsOpen, setVersionsOpen] = useState(false);
  const [liveId, setLiveId] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (!catalog.data || loaded.loading || loaded.error) return;
    useGraph.getState().setRegistry(createNodeRegistry(catalog.data));
    const imported = (location.state as { doc?: Definition } | null)?.doc;
    if (loaded.data) useGraph.getState().load(loaded.data.document as unknown as Definition, loaded.data);
    else useGraph.getState().load(imported ?? emptyDefinition());
    if (!loaded.data && imported) useGraph.setState({ dirty: true });
  }, [catalog.data, loaded.data, loaded.loading, loaded.error, location.state]);

  const onSave = async () => {
    const version = await save(message, t);
    if (version && version.process_id !== processId) navigate(`/processes/${version.process_id}`, { replace: true });
  };
  const problem = catalog.error ?? loaded.error;
  if (problem) return <ProblemAlert problem={problem} onRetry={() => void (catalog.error ? catalog.reload() : loaded.reload())} />;
  if (catalog.loading || loaded.loading) return <Spin style={{ display: "block", margin: 80 }} data-testid="designer-loading" />;

  const canRun = saved !== null && !dirty;
  return (
    <div className="cz-designer-page" data-testid="designer">
      <div className="cz-toolbar">
        <Typography.Title level={4} style={{ margin: 0 }} data-testid="designer-title">
          {meta.name || meta.id}
        </Typography.Title>
        {saved && <Tag color={VERSION_COLORS[saved.status]} data-testid="designer-version">v{saved.version} · {t(`versionStatus.${saved.status}`)}</Tag>}
        {dirty && <Tag color="orange" data-testid="designer-dirty">{t("designer.unsaved")}</Tag>}
        <div style={{ flex: 1 }} />
        <Space wrap>
          <Button icon={<CheckCircleOutlined />} onClick={() => void validate(message, t)} data-testid="designer-validate">{t("designer.validate")}</Button>
          <Button type="primary" icon={<SaveOutlined />} onClick={() => void onSave()} data-testid="designer-save">{t("designer.save")}</Button>
          <Popconfirm title={t("versions.publishConfirm", { version: saved?.version ?? "" })} onConfirm={() => saved && void publish(message, t, saved)} disabled={!canRun || saved?.status !== "draft"}>
            <Button icon={<CloudUploadOutlined />} disabled={!canRun || saved?.status !== "draft"} data-testid="designer-publish">{t("designer.publish")}</Button>
          </Popconfirm>
          <Tooltip title={canRun ? undefined : t("designer.saveFirst")}>
            <Button icon={<PlayCircleOutlined />} disabled={!canRun} onClick={() => setRunOpen(true)} data-testid="designer-run">{t("designer.run")}</Button>
          </Tooltip>
          <Button icon={<HistoryOutlined />} disabled={!saved} onClick={() => setVersionsOpen(true)} data-testid="designer-versions">{t("designer.versions")}</Button>
          <Button icon={<UploadOutlined />} onClick={() => fileInput.current?.click()} data-testid="designer-import">{t("designer.import")}</Button>
          <Button icon={<DownloadOutlined />} onClick={exportYaml} data-testid="designer-export">{t("designer.export")}</Button>
        </Space>
        <input
          ref={fileInput}
          type="file"
          accept=".yaml,.yml,.json"
          style={{ display: "none" }}
          data-testid="designer-import-file"
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void importYaml(message, t, file);
            e.target.value = "";
          }}
        />
      </div>
      {liveId && <RunBanner id={liveId} onClose={() => setLiveId(null)} />}
      <ReactFlowProvider>
        <Workspace liveId={liveId} />
      </ReactFlowProvider>
      {saved && (
        <>
          <RunModal
            open={runOpen}
            processId={saved.process_id}
            version={saved.version}
            inputsSchema={meta["inputs"] as never}
            onClose={() => setRunOpen(false)}
            onStarted={(instance) => setLiveId(instance.id)}
          />
          <VersionsDrawer
            open={versionsOpen}
            processId={saved.process_id}
            onClose={() => setVersionsOpen(false)}
            onOpenVersion={(v) => {
              setVersionsOpen(false);
              setSearch({ version: String(v) });
            }}
            onPublish={(v) => publish(message, t, v)}
          />
        </>
      )}
    </div>
  );
}
