// Users of the installation (system admins): create, disable/enable, grant or revoke admin.
import { PlusOutlined } from "@ant-design/icons";
import { App, Button, Checkbox, Empty, Form, Input, Modal, Popconfirm, Space, Table, Tag } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { User, UserInput } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";

export function UsersTab() {
  const t = useT();
  const { message } = App.useApp();
  const me = useSession((s) => s.me?.user?.id);
  const users = useLoad(() => unwrap(api.GET("/api/v1/users")), []);
  const [open, setOpen] = useState(false);
  const [form] = Form.useForm<UserInput>();

  const create = async () => {
    const values = await form.validateFields();
    const done = await attempt(message, () => unwrap(api.POST("/api/v1/users", { body: values })), t("users.created", { name: values.username }));
    if (done) {
      setOpen(false);
      form.resetFields();
      await users.reload();
    }
  };
  const patch = (user: User, body: { disabled?: boolean; is_admin?: boolean }) =>
    attempt(message, () => unwrap(api.PATCH("/api/v1/users/{user_id}", { params: { path: { user_id: user.id } }, body })), t("users.updated", { name: user.username })).then(
      users.reload,
    );

  return (
    <div data-testid="users-tab">
      <Button type="primary" icon={<PlusOutlined />} onClick={() => setOpen(true)} style={{ marginBottom: 12 }} data-testid="users-new">{t("users.new")}</Button>
      <ProblemAlert problem={users.error} onRetry={() => void users.reload()} />
      <Table<User>
        rowKey="id"
        loading={users.loading}
        dataSource={users.data ?? []}
        data-testid="users-table"
        locale={{ emptyText: <Empty description={t("users.empty")} /> }}
        columns={[
          { title: t("login.username"), dataIndex: "username", render: (n: string) => <span data-testid={`user-${n}`}>{n}</span> },
          { title: t("users.system"), dataIndex: "is_admin", render: (a: boolean) => (a ? <Tag color="red">{t("users.admin")}</Tag> : <Tag>{t("users.member")}</Tag>) },
          { title: t("common.status"), dataIndex: "disabled", render: (d?: boolean) => (d ? <Tag>{t("users.disabled")}</Tag> : <Tag color="green">{t("users.active")}</Tag>) },
          {
            key: "actions",
            render: (_, user) =>
              user.id === me ? null : (
                <Space>
                  <Popconfirm title={t(user.is_admin ? "users.revokeAdminConfirm" : "users.grantAdminConfirm", { name: user.username })} onConfirm={() => patch(user, { is_admin: !user.is_admin })}>
                    <Button size="small">{t(user.is_admin ? "users.revokeAdmin" : "users.grantAdmin")}</Button>
                  </Popconfirm>
                  <Popconfirm
                    title={t(user.disabled ? "users.enableConfirm" : "users.disableConfirm", { name: user.username })}
                    onConfirm={() => patch(user, { disabled: !user.disabled })}
                    okButtonProps={{ danger: !user.disabled }}
                  >
                    <Button size="small" danger={!user.disabled} data-testid={`user-toggle-${user.username}`}>
                      {t(user.disabled ? "users.enable" : "users.disable")}
                    </Button>
                  </Popconfirm>
                </Space>
              ),
          },
        ]}
      />
      <Modal open={open} title={t("users.new")} onOk={() => void create()} onCancel={() => setOpen(false)} okText={t("common.create")} cancelText={t("common.cancel")}>
        <Form form={form} layout="vertical" initialValues={{ is_admin: false }}>
          <Form.Item name="username" label={t("login.username")} rules={[{ required: true }]}>
            <Input data-testid="user-username" autoComplete="off" />
          </Form.Item>
          <Form.Item name="password" label={t("login.password")} rules={[{ required: true, min: 12 }]}>
            <Input.Password data-testid="user-password" autoComplete="new-password" />
          </Form.Item>
          <Form.Item name="is_admin" valuePropName="checked">
            <Checkbox>{t("users.admin")}</Checkbox>
          </Form.Item>
        </Form>
      </Modal>
    </div>
  );
}
