// Workspaces (tenants) with their members and roles, and the settings in force.
import { DeleteOutlined, PlusOutlined, TeamOutlined } from "@ant-design/icons";
import { App, Button, Descriptions, Empty, Form, Input, Modal, Space, Spin, Table, Tag, Tooltip } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { Workspace, WorkspaceInput } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { LiveSettings } from "../config/LiveSettings";
import { DeleteWorkspaceModal } from "./DeleteWorkspaceModal";
import { deleteBlocker } from "./deletion";
import { MembersDrawer } from "./MembersDrawer";

async function refreshMe() {
  const me = await unwrap(api.GET("/api/v1/me")).catch(() => null);
  if (me) useSession.getState().setMe(me);
}

export function WorkspacesTab() {
  const t = useT();
  const { message } = App.useApp();
  const workspaces = useLoad(() => unwrap(api.GET("/api/v1/workspaces")), []);
  const current = useSession((s) => s.workspace);
  const [open, setOpen] = useState(false);
  const [members, setMembers] = useState<Workspace | null>(null);
  const [deleting, setDeleting] = useState<Workspace | null>(null);
  const system = useSession((s) => s.me?.permissions.includes("system") ?? false);
  const [form] = Form.useForm<WorkspaceInput>();

  const create = async () => {
    const values = await form.validateFields();
    const done = await attempt(message, () => unwrap(api.POST("/api/v1/workspaces", { body: values })), t("workspaces.created", { name: values.name }));
    if (done) {
      setOpen(false);
      form.resetFields();
      await workspaces.reload();
      await refreshMe();
    }
  };

  return (
    <div data-testid="workspaces-tab">
      <Button type="primary" icon={<PlusOutlined />} onClick={() => setOpen(true)} style={{ marginBottom: 12 }} data-testid="workspaces-new">{t("workspaces.new")}</Button>
      <ProblemAlert problem={workspaces.error} onRetry={() => void workspaces.reload()} />
      <Table<Workspace>
        rowKey="id"
        loading={workspaces.loading}
        dataSource={workspaces.data ?? []}
        data-testid="workspaces-table"
        locale={{ emptyText: <Empty description={t("workspaces.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string, w) => <span>{n} {w.id === current && <Tag color="blue">{t("workspaces.current")}</Tag>}</span> },
          { title: "ID", dataIndex: "id", render: (id: string) => <code>{id}</code> },
          { title: t("common.created"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          {
            title: t("workspaces.state"),
            dataIndex: "state",
            render: (state: string | undefined, w) => (state === "deleting" ? <Tag color="orange" data-testid={`workspace-state-${w.id}`}>{t("workspaces.deleting")}</Tag> : null),
          },
          {
            key: "actions",
            render: (_, w) => (
              <Space>
                <Button size="small" icon={<TeamOutlined />} onClick={() => setMembers(w)} data-testid={`workspace-members-${w.id}`}>
                  {t("members.title")}
                </Button>
                {system && <DeleteButton workspace={w} current={current} onClick={() => setDeleting(w)} />}
              </Space>
            ),
          },
        ]}
      />
      <Modal open={open} title={t("workspaces.new")} onOk={() => void create()} onCancel={() => setOpen(false)} okText={t("common.create")} cancelText={t("common.cancel")}>
        <Form form={form} layout="vertical">
          <Form.Item name="name" label={t("agents.name")} rules={[{ required: true }]}>
            <Input data-testid="workspace-name" />
          </Form.Item>
        </Form>
      </Modal>
      <MembersDrawer workspace={members} onClose={() => setMembers(null)} />
      {deleting && (
        <DeleteWorkspaceModal
          key={deleting.id}
          workspace={deleting}
          onClose={() => setDeleting(null)}
          onRequested={() => void workspaces.reload()}
          onGone={() => void Promise.all([workspaces.reload(), refreshMe()])}
        />
      )}
    </div>
  );
}

function DeleteButton({ workspace, current, onClick }: { workspace: Workspace; current: string | null; onClick(): void }) {
  const t = useT();
  const blocker = deleteBlocker(workspace, current);
  const inProgress = workspace.state === "deleting";
  const button = (
    <Button size="small" danger icon={<DeleteOutlined />} disabled={blocker !== null} onClick={onClick} data-testid={`workspace-delete-${workspace.id}`}>
      {inProgress ? t("workspaces.deletionProgress") : t("workspaces.delete")}
    </Button>
  );
  if (blocker === null) return button;
  const why = blocker === "default" ? t("workspaces.cannotDeleteDefault") : t("workspaces.cannotDeleteCurrent");
  return (
    <Tooltip title={why}>
      <span data-testid={`workspace-delete-blocked-${workspace.id}`}>{button}</span>
    </Tooltip>
  );
}

export function SettingsTab() {
  const system = useSession((s) => s.me?.permissions.includes("system") ?? false);
  return (
    <>
      {system && <LiveSettings />}
      <SettingsInForce />
    </>
  );
}

function SettingsInForce() {
  const t = useT();
  const settings = useLoad(() => unwrap(api.GET("/api/v1/settings")), []);
  if (settings.error) return <ProblemAlert problem={settings.error} onRetry={() => void settings.reload()} />;
  if (settings.loading) return <Spin />;
  const entries = Object.entries(settings.data ?? {});
  if (entries.length === 0) return <Empty description={t("settings.empty")} />;
  return (
    <Descriptions bordered size="small" column={1} data-testid="settings-tab" title={t("config.inForce")}>
      {entries.map(([key, value]) => (
        <Descriptions.Item key={key} label={<code>{key}</code>}>
          <code className="cz-clip" style={{ maxWidth: 720 }}>{typeof value === "string" ? value : JSON.stringify(value)}</code>
        </Descriptions.Item>
      ))}
    </Descriptions>
  );
}
