// Secrets of the current workspace: set, replace, delete. Values go in and never come back:
// the list shows names and who set them when. Used as {{ secrets.NAME }} in an http node's
// url, query or headers only.
import { PlusOutlined } from "@ant-design/icons";
import { Alert, App, Button, Empty, Form, Input, Modal, Popconfirm, Space, Table, Typography } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { Secret, SecretInput } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function SecretsTab() {
  const t = useT();
  const { message } = App.useApp();
  const workspace = useSession((s) => s.workspace) ?? "default";
  const path = { workspace_id: workspace };
  const secrets = useLoad(
    () => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/secrets", { params: { path } })),
    [workspace],
  );
  const [editing, setEditing] = useState<{ name: string; replace: boolean } | null>(null);
  const [form] = Form.useForm<SecretInput & { name: string }>();

  const open = (name: string | null) => {
    form.resetFields();
    if (name) form.setFieldsValue({ name });
    setEditing({ name: name ?? "", replace: name !== null });
  };
  const save = async () => {
    const { name, value } = await form.validateFields();
    const done = await attempt(
      message,
      () =>
        unwrap(
          api.PUT("/api/v1/workspaces/{workspace_id}/secrets/{name}", {
            params: { path: { ...path, name } },
            body: { value },
          }),
        ),
      t("secrets.saved", { name }),
    );
    if (done) {
      form.resetFields(); // the value leaves the page as soon as it is stored
      setEditing(null);
      await secrets.reload();
    }
  };
  const remove = (name: string) =>
    attempt(
      message,
      () =>
        unwrap(api.DELETE("/api/v1/workspaces/{workspace_id}/secrets/{name}", { params: { path: { ...path, name } } })),
      t("secrets.deleted", { name }),
    ).then(secrets.reload);

  return (
    <div data-testid="secrets-tab">
      <Alert type="info" showIcon message={t("secrets.usage")} style={{ marginBottom: 12 }} />
      <Button type="primary" icon={<PlusOutlined />} onClick={() => open(null)} style={{ marginBottom: 12 }} data-testid="secrets-new">
        {t("secrets.new")}
      </Button>
      <ProblemAlert problem={secrets.error} onRetry={() => void secrets.reload()} />
      <Table<Secret>
        rowKey="name"
        loading={secrets.loading}
        dataSource={secrets.data ?? []}
        data-testid="secrets-table"
        locale={{ emptyText: <Empty description={t("secrets.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name", render: (n: string) => <Typography.Text code>{n}</Typography.Text> },
          { title: t("common.created"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          { title: t("secrets.updated"), dataIndex: "updated_at", render: (d: number) => formatTime(d) },
          { title: t("secrets.by"), dataIndex: "updated_by" },
          {
            key: "actions",
            render: (_, s) => (
              <Space>
                <Button size="small" onClick={() => open(s.name)} data-testid={`secret-replace-${s.name}`}>
                  {t("secrets.replace")}
                </Button>
                <Popconfirm title={t("secrets.deleteConfirm", { name: s.name })} onConfirm={() => remove(s.name)} okButtonProps={{ danger: true }}>
                  <Button size="small" danger data-testid={`secret-delete-${s.name}`}>
                    {t("common.delete")}
                  </Button>
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
      <Modal
        open={editing !== null}
        title={editing?.replace ? t("secrets.replaceTitle", { name: editing.name }) : t("secrets.new")}
        onOk={() => void save()}
        onCancel={() => {
          form.resetFields();
          setEditing(null);
        }}
        okText={t("common.save")}
        cancelText={t("common.cancel")}
        destroyOnClose
      >
        <Form form={form} layout="vertical" autoComplete="off">
          <Form.Item
            name="name"
            label={t("agents.name")}
            rules={[{ required: true, pattern: NAME, message: t("secrets.nameRule") }]}
          >
            <Input disabled={editing?.replace} data-testid="secret-name" />
          </Form.Item>
          <Form.Item name="value" label={t("secrets.value")} rules={[{ required: true }]} extra={t("secrets.writeOnly")}>
            <Input.Password autoComplete="new-password" visibilityToggle={false} data-testid="secret-value" />
          </Form.Item>
        </Form>
      </Modal>
    </div>
  );
}
