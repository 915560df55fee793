// Deleting a workspace (system admins): what goes, a typed-name confirmation, the legal holds
// that refuse it (409) with the held instances, then the job's progress until the workspace
// is gone (the progress route answers 404), when the caller refreshes the switcher.
import { Alert, Button, Input, Modal, Progress, Result, Space, Table, Typography } from "antd";
import { useEffect, useRef, useState } from "react";
import { useNavigate } from "react-router-dom";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { Deletion, LegalHold, Workspace } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { deletionDone, deletionPercent, nameConfirmed, POLL_MS, refusedByHolds, tableRows, type TableRow } from "./deletion";

type Phase = "confirm" | "refused" | "progress" | "done";

interface Props {
  workspace: Workspace;
  onClose(): void;
  /** The request was taken (the list shows the workspace as deleting). */
  onRequested(): void;
  /** The workspace is gone: refresh the lists and the switcher. */
  onGone(): void;
}

const path = (id: string) => ({ params: { path: { workspace_id: id } } });

export function DeleteWorkspaceModal({ workspace, onClose, onRequested, onGone }: Props) {
  const t = useT();
  const navigate = useNavigate();
  const { id, name } = workspace;
  const [phase, setPhase] = useState<Phase>(workspace.state === "deleting" ? "progress" : "confirm");
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [holds, setHolds] = useState<LegalHold[]>([]);
  const [progress, setProgress] = useState<Deletion | null>(null);
  const gone = useRef(onGone);
  gone.current = onGone;

  const submit = async () => {
    setBusy(true);
    setProblem(null);
    try {
      setProgress(await unwrap(api.DELETE("/api/v1/workspaces/{workspace_id}", path(id))) as Deletion);
      setPhase("progress");
      onRequested();
    } catch (failure) {
      const refused = problemOf(failure);
      setProblem(refused);
      if (refusedByHolds(refused)) {
        setHolds(await unwrap(api.GET("/api/v1/workspaces/{workspace_id}/legal-holds", path(id))).catch(() => []));
        setPhase("refused");
      }
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    if (phase !== "progress") return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const found = await unwrap(api.GET("/api/v1/workspaces/{workspace_id}/deletion", path(id)));
        if (stopped) return;
        setProgress(found);
        setProblem(null);
      } catch (failure) {
        if (stopped) return;
        const p = problemOf(failure);
        if (deletionDone(p)) {
          setPhase("done");
          gone.current();
          return;
        }
        setProblem(p); // e.g. a 503 while the database is away: shown, and asked again
      }
      timer = setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [phase, id]);

  const openRetention = () => {
    useSession.getState().setWorkspace(id);
    onClose();
    navigate("/system?tab=retention");
  };

  const close = <Button key="close" onClick={onClose} data-testid="deletion-close">{t("common.close")}</Button>;
  const footer = {
    confirm: [
      <Button key="cancel" onClick={onClose}>{t("common.cancel")}</Button>,
      <Button key="ok" danger type="primary" loading={busy} disabled={!nameConfirmed(typed, name)} onClick={() => void submit()} data-testid="deletion-submit">
        {t("deletion.confirm")}
      </Button>,
    ],
    refused: [
      close,
      <Button key="open" onClick={openRetention} data-testid="deletion-open-retention">{t("deletion.openRetention", { name })}</Button>,
      <Button key="retry" danger type="primary" loading={busy} onClick={() => void submit()} data-testid="deletion-retry">{t("deletion.retry")}</Button>,
    ],
    progress: [close],
    done: [close],
  }[phase];

  return (
    <Modal open title={t("deletion.title", { name })} onCancel={onClose} footer={footer} width={640} maskClosable={false} data-testid="deletion-modal">
      <div data-testid={`deletion-${phase}`}>
        {phase === "confirm" && <Confirm workspace={workspace} typed={typed} onType={setTyped} onEnter={() => void submit()} />}
        {phase !== "done" && <ProblemAlert problem={problem} />}
        {phase === "refused" && <Held name={name} holds={holds} />}
        {phase === "progress" && <Running name={name} progress={progress} />}
        {phase === "done" && (
          <Result status="success" title={t("deletion.done", { name })} subTitle={t("deletion.doneHelp")} style={{ padding: "12px 0" }}>
            {progress && <Rows rows={tableRows(progress)} />}
          </Result>
        )}
      </div>
    </Modal>
  );
}

function Confirm({ workspace, typed, onType, onEnter }: { workspace: Workspace; typed: string; onType(v: string): void; onEnter(): void }) {
  const t = useT();
  const preview = useLoad(() => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/deletion", path(workspace.id))), [workspace.id]);
  const tables = preview.data ? Object.keys(preview.data.remaining).length : 0;
  return (
    <Space direction="vertical" style={{ width: "100%" }}>
      <Alert type="warning" showIcon message={t("deletion.warning", { name: workspace.name })} description={t("deletion.readOnly")} />
      {preview.data && (
        <Typography.Text data-testid="deletion-preview">{t("deletion.preview", { rows: preview.data.rows_left, tables })}</Typography.Text>
      )}
      <Typography.Text strong>{t("deletion.typeName", { name: workspace.name })}</Typography.Text>
      <Input
        value={typed}
        onChange={(e) => onType(e.target.value)}
        onPressEnter={() => nameConfirmed(typed, workspace.name) && onEnter()}
        placeholder={workspace.name}
        autoComplete="off"
        data-testid="deletion-name"
      />
    </Space>
  );
}

function Held({ name, holds }: { name: string; holds: LegalHold[] }) {
  const t = useT();
  return (
    <>
      <Typography.Title level={5}>{t("deletion.refused")}</Typography.Title>
      <Typography.Paragraph>{t("deletion.refusedHelp", { name })}</Typography.Paragraph>
      <Table<LegalHold>
        rowKey="instance_id"
        size="small"
        pagination={false}
        dataSource={holds}
        scroll={{ y: 240 }}
        data-testid="deletion-holds"
        columns={[
          { title: t("instances.id"), dataIndex: "instance_id", render: (i: string) => <code data-testid={`deletion-hold-${i}`}>{i}</code> },
          { title: t("hold.reason"), dataIndex: "reason", render: (r: string | null) => r ?? <span className="cz-muted">—</span> },
          { title: t("hold.by"), dataIndex: "set_by" },
          { title: t("hold.at"), dataIndex: "set_at", render: (d: number | null) => formatTime(d) },
        ]}
      />
    </>
  );
}

function Running({ name, progress }: { name: string; progress: Deletion | null }) {
  const t = useT();
  const started = progress !== null && Object.keys(progress.deleted).length > 0;
  return (
    <Space direction="vertical" style={{ width: "100%" }}>
      <Typography.Text data-testid="deletion-status">
        {progress && started ? t("deletion.inProgress", { name, rows: progress.rows_left }) : t("deletion.waiting", { name })}
      </Typography.Text>
      <Progress percent={progress ? deletionPercent(progress) : 0} status="active" data-testid="deletion-progress-bar" />
      {progress && <Rows rows={tableRows(progress)} />}
      <Typography.Text type="secondary">{t("deletion.closeHint")}</Typography.Text>
    </Space>
  );
}

function Rows({ rows }: { rows: TableRow[] }) {
  const t = useT();
  return (
    <Table<TableRow>
      rowKey="table"
      size="small"
      pagination={false}
      dataSource={rows}
      scroll={{ y: 240 }}
      data-testid="deletion-tables"
      columns={[
        { title: t("deletion.table"), dataIndex: "table", render: (n: string) => <code>{n}</code> },
        { title: t("deletion.left"), dataIndex: "left", align: "right" },
        { title: t("deletion.deleted"), dataIndex: "deleted", align: "right" },
      ]}
    />
  );
}
