// The members of a workspace and their roles (admin, editor, operator, viewer).
import { App, Button, Drawer, Empty, Form, Popconfirm, Select, Space, Table } from "antd";
import { unwrap } from "../api/client";
import type { Member, Role, User, Workspace } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";

export const ROLES: Role[] = ["admin", "editor", "operator", "viewer"];

export function MembersDrawer({ workspace, onClose }: { workspace: Workspace | null; onClose: () => void }) {
  const t = useT();
  const { message } = App.useApp();
  const id = workspace?.id ?? "";
  const members = useLoad(
    () => (id ? unwrap(api.GET("/api/v1/workspaces/{workspace_id}/members", { params: { path: { workspace_id: id } } })) : Promise.resolve([] as Member[])),
    [id],
  );
  const users = useLoad(() => (id ? unwrap(api.GET("/api/v1/users")) : Promise.resolve([] as User[])), [id]);
  const [form] = Form.useForm<{ user_id: string; role: Role }>();
  const put = (userId: string, role: Role) =>
    attempt(
      message,
      () => unwrap(api.PUT("/api/v1/workspaces/{workspace_id}/members/{user_id}", { params: { path: { workspace_id: id, user_id: userId } }, body: { role } })),
      t("members.saved"),
    ).then(members.reload);
  const remove = (userId: string) =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/workspaces/{workspace_id}/members/{user_id}", { params: { path: { workspace_id: id, user_id: userId } } })), t("members.removed")).then(
      members.reload,
    );
  const roleOptions = ROLES.map((r) => ({ value: r, label: r }));

  return (
    <Drawer open={workspace !== null} onClose={onClose} width={560} title={t("members.of", { name: workspace?.name ?? "" })} data-testid="members-drawer">
      <ProblemAlert problem={members.error} onRetry={() => void members.reload()} />
      <Form form={form} layout="inline" style={{ marginBottom: 12 }} onFinish={(v) => void put(v.user_id, v.role).then(() => form.resetFields())} initialValues={{ role: "viewer" }}>
        <Form.Item name="user_id" rules={[{ required: true }]}>
          <Select
            style={{ width: 200 }}
            placeholder={t("members.user")}
            showSearch
            optionFilterProp="label"
            options={(users.data ?? []).map((u) => ({ value: u.id, label: u.username }))}
            data-testid="member-user"
          />
        </Form.Item>
        <Form.Item name="role">
          <Select style={{ width: 120 }} options={roleOptions} data-testid="member-role" />
        </Form.Item>
        <Button htmlType="submit" type="primary" data-testid="member-add">{t("common.add")}</Button>
      </Form>
      <Table<Member>
        rowKey="user_id"
        size="small"
        loading={members.loading}
        dataSource={members.data ?? []}
        pagination={false}
        locale={{ emptyText: <Empty description={t("members.empty")} /> }}
        columns={[
          { title: t("login.username"), dataIndex: "username" },
          {
            title: t("users.role"),
            dataIndex: "role",
            render: (role: Role, m) => <Select size="small" value={role} options={roleOptions} onChange={(r: Role) => void put(m.user_id, r)} style={{ width: 120 }} />,
          },
          {
            key: "actions",
            render: (_, m) => (
              <Space>
                <Popconfirm title={t("members.removeConfirm", { name: m.username })} onConfirm={() => remove(m.user_id)} okButtonProps={{ danger: true }}>
                  <Button size="small" danger>{t("common.remove")}</Button>
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
    </Drawer>
  );
}
