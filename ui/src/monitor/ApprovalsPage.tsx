// The approvals inbox: approval tasks waiting for a human, approved or rejected with a comment.
import { CheckOutlined, CloseOutlined, ReloadOutlined } from "@ant-design/icons";
import { App, Button, Empty, Input, Modal, Space, Table, Typography, type ButtonProps } from "antd";
import { useState } from "react";
import { Link } from "react-router-dom";
import { unwrap } from "../api/client";
import type { Approval } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";

type Decision = "approve" | "reject";

/** What the approval node rendered when it started waiting (DESIGN §4: title, description, timeout). */
export function approvalInfo(task: Approval): { title: string; description: string; timeoutAt: number | null } {
  const detail = task.detail ?? {};
  const text = (key: string) => (typeof detail[key] === "string" ? (detail[key] as string) : "");
  const timeout = detail["timeout_at"];
  return { title: text("title") || task.node_id, description: text("description"), timeoutAt: typeof timeout === "number" ? timeout : null };
}

export default function ApprovalsPage() {
  const t = useT();
  const { message } = App.useApp();
  const inbox = useLoad(() => unwrap(api.GET("/api/v1/execution/approvals")), []);
  const [deciding, setDeciding] = useState<{ task: Approval; decision: Decision } | null>(null);
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);

  const decide = async () => {
    if (!deciding) return;
    setBusy(true);
    const params = { params: { path: { task_id: deciding.task.id } }, body: { comment: comment || null } };
    const done = await attempt(
      message,
      () =>
        deciding.decision === "approve"
          ? unwrap(api.POST("/api/v1/execution/tasks/{task_id}/approve", params))
          : unwrap(api.POST("/api/v1/execution/tasks/{task_id}/reject", params)),
      t(deciding.decision === "approve" ? "approvals.approved" : "approvals.rejected"),
    );
    setBusy(false);
    if (done !== undefined) {
      setDeciding(null);
      setComment("");
      await inbox.reload();
    }
  };
  const info = deciding ? approvalInfo(deciding.task) : null;

  return (
    <div data-testid="approvals-page">
      <Space style={{ width: "100%", justifyContent: "space-between", marginBottom: 16 }}>
        <Typography.Title level={3} style={{ margin: 0 }}>{t("nav.approvals")}</Typography.Title>
        <Button icon={<ReloadOutlined />} onClick={() => void inbox.reload()} data-testid="approvals-reload">{t("common.refresh")}</Button>
      </Space>
      <ProblemAlert problem={inbox.error} onRetry={() => void inbox.reload()} />
      <Table<Approval>
        rowKey="id"
        loading={inbox.loading}
        dataSource={inbox.data ?? []}
        data-testid="approvals-table"
        locale={{ emptyText: <Empty description={t("approvals.empty")} /> }}
        columns={[
          { title: t("approvals.titleColumn"), key: "title", render: (_, task) => <span data-testid={`approval-${task.node_id}`}>{approvalInfo(task).title}</span> },
          { title: t("instances.process"), dataIndex: "process_id" },
          { title: t("instances.id"), dataIndex: "instance_id", render: (id: string) => <Link to={`/instances/${id}`}><code>{id}</code></Link> },
          { title: t("common.created"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          { title: t("approvals.deadline"), key: "deadline", render: (_, task) => formatTime(approvalInfo(task).timeoutAt) },
          {
            key: "actions",
            render: (_, task) => (
              <Space>
                <Button type="primary" size="small" icon={<CheckOutlined />} onClick={() => setDeciding({ task, decision: "approve" })} data-testid={`approve-${task.node_id}`}>
                  {t("approvals.approve")}
                </Button>
                <Button danger size="small" icon={<CloseOutlined />} onClick={() => setDeciding({ task, decision: "reject" })} data-testid={`reject-${task.node_id}`}>
                  {t("approvals.reject")}
                </Button>
              </Space>
            ),
          },
        ]}
      />
      <Modal
        open={deciding !== null}
        title={deciding && info ? t(deciding.decision === "approve" ? "approvals.approveTitle" : "approvals.rejectTitle", { title: info.title }) : ""}
        onCancel={() => setDeciding(null)}
        onOk={() => void decide()}
        confirmLoading={busy}
        okText={deciding?.decision === "approve" ? t("approvals.approve") : t("approvals.reject")}
        okButtonProps={{ danger: deciding?.decision === "reject", "data-testid": "decision-confirm" } as ButtonProps}
        cancelText={t("common.cancel")}
      >
        {info?.description && <Typography.Paragraph>{info.description}</Typography.Paragraph>}
        <Input.TextArea
          placeholder={t("approvals.comment")}
          value={comment}
          onChange={(e) => setComment(e.target.value)}
          autoSize={{ minRows: 3 }}
          data-testid="decision-comment"
        />
      </Modal>
    </div>
  );
}
