// API keys of the workspace. A new key's secret is shown once, then only its prefix.
import { PlusOutlined } from "@ant-design/icons";
import { Alert, App, Button, Empty, Form, Input, Modal, Popconfirm, Select, Table, Tag, Typography } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import type { ApiKey, ApiKeyCreated, ApiKeyInput } from "../api/types";
import { attempt } from "../components/feedback";
import { ProblemAlert } from "../components/ProblemAlert";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";
import { ROLES } from "./MembersDrawer";

const TTLS: [number, number][] = [7, 30, 90, 365].map((d) => [d, d * 86400]);

export function ApiKeysTab() {
  const t = useT();
  const { message } = App.useApp();
  const keys = useLoad(() => unwrap(api.GET("/api/v1/api-keys")), []);
  const [open, setOpen] = useState(false);
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [form] = Form.useForm<ApiKeyInput>();

  const create = async () => {
    const values = await form.validateFields();
    const result = await attempt(message, () => unwrap(api.POST("/api/v1/api-keys", { body: values })));
    if (result) {
      setOpen(false);
      form.resetFields();
      setCreated(result);
      await keys.reload();
    }
  };
  const revoke = (key: ApiKey) =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: key.id } } })), t("keys.revoked", { name: key.name })).then(keys.reload);

  return (
    <div data-testid="keys-tab">
      <Button type="primary" icon={<PlusOutlined />} onClick={() => setOpen(true)} style={{ marginBottom: 12 }} data-testid="keys-new">{t("keys.new")}</Button>
      <ProblemAlert problem={keys.error} onRetry={() => void keys.reload()} />
      <Table<ApiKey>
        rowKey="id"
        loading={keys.loading}
        dataSource={keys.data ?? []}
        data-testid="keys-table"
        locale={{ emptyText: <Empty description={t("keys.empty")} /> }}
        columns={[
          { title: t("agents.name"), dataIndex: "name" },
          { title: t("users.role"), dataIndex: "role", render: (r: string) => <Tag>{r}</Tag> },
          { title: t("common.created"), dataIndex: "created_at", render: (d: number) => formatTime(d) },
          { title: t("keys.expires"), dataIndex: "expires_at", render: (d: number | null) => (d ? formatTime(d) : t("keys.never")) },
          { title: t("keys.lastUsed"), dataIndex: "last_used_at", render: (d: number | null) => formatTime(d) },
          {
            key: "actions",
            render: (_, key) =>
              key.revoked ? (
                <Tag>{t("keys.revokedTag")}</Tag>
              ) : (
              <Popconfirm title={t("keys.revokeConfirm", { name: key.name })} onConfirm={() => revoke(key)} okButtonProps={{ danger: true }}>
                <Button size="small" danger data-testid={`key-revoke-${key.name}`}>{t("keys.revoke")}</Button>
              </Popconfirm>
              ),
          },
        ]}
      />
      <Modal open={open} title={t("keys.new")} onOk={() => void create()} onCancel={() => setOpen(false)} okText={t("common.create")} cancelText={t("common.cancel")}>
        <Form form={form} layout="vertical" initialValues={{ role: "operator" }}>
          <Form.Item name="name" label={t("agents.name")} rules={[{ required: true }]}>
            <Input data-testid="key-name" />
          </Form.Item>
          <Form.Item name="role" label={t("users.role")} rules={[{ required: true }]}>
            <Select options={ROLES.map((r) => ({ value: r, label: r }))} data-testid="key-role" />
          </Form.Item>
          <Form.Item name="ttl_s" label={t("keys.ttl")}>
            <Select allowClear placeholder={t("keys.never")} options={TTLS.map(([days, s]) => ({ value: s, label: t("keys.days", { days }) }))} />
          </Form.Item>
        </Form>
      </Modal>
      <Modal
        open={created !== null}
        title={t("keys.createdTitle")}
        onOk={() => setCreated(null)}
        onCancel={() => setCreated(null)}
        cancelButtonProps={{ style: { display: "none" } }}
        okText={t("keys.stored")}
        maskClosable={false}
        data-testid="key-secret-modal"
      >
        <Alert type="warning" showIcon message={t("keys.onlyOnce")} style={{ marginBottom: 12 }} />
        <Typography.Paragraph copyable={{ text: created?.secret ?? "" }}>
          <code data-testid="key-secret">{created?.secret}</code>
        </Typography.Paragraph>
      </Modal>
    </div>
  );
}
