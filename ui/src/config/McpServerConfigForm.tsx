// Add or change an MCP server: streamable HTTP (url, headers) or, for system admins, a stdio
// command. Saving runs a handshake and a tool list with this very configuration first.
import { Checkbox, Form, Input, Modal, Radio, Select, Space, type ButtonProps } from "antd";
import { useEffect } from "react";
import { unwrap } from "../api/client";
import type { McpServerConfig, McpServerConfigInput } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { useT } from "../i18n";
import { api } from "../session/store";
import { credentials, type Pair } from "./config";
import { PairsField } from "./PairsField";
import { useSave } from "./useSave";

const FIELDS = ["command", "args", "env", "url", "headers"] as const;
interface Values {
  name: string;
  scope: "workspace" | "shared";
  transport: "http" | "stdio";
  url?: string;
  command?: string;
  args?: string[];
  headers?: Pair[];
  env?: Pair[];
  replace_headers?: boolean;
  replace_env?: boolean;
  validate: boolean;
}

interface Props {
  open: boolean;
  editing: McpServerConfig | null;
  system: boolean;
  onClose: () => void;
  onSaved: () => void;
}

export function McpServerConfigForm({ open, editing, system, onClose, onSaved }: Props) {
  const t = useT();
  const [form] = Form.useForm<Values>();
  const save = useSave(form, FIELDS);
  const transport = Form.useWatch("transport", form);
  useEffect(() => {
    if (!open) return;
    form.resetFields();
    form.setFieldsValue(
      editing
        ? { name: editing.name, scope: editing.scope === "shared" ? "shared" : "workspace", transport: editing.transport, url: editing.url ?? undefined, command: editing.command ?? undefined, args: editing.args, validate: true }
        : { scope: "workspace", transport: "http", validate: true, args: [] },
    );
    save.clear();
  }, [open, editing]);

  const submit = async () => {
    const v = await form.validateFields();
    const http = v.transport === "http";
    const body: McpServerConfigInput = http ? { url: v.url ?? null } : { command: v.command ?? null, args: v.args ?? [] };
    const headers = http ? credentials(v.headers, Boolean(v.replace_headers), editing?.header_names ?? []) : {};
    const env = http ? {} : credentials(v.env, Boolean(v.replace_env), editing?.env_names ?? []);
    if (headers !== undefined) body.headers = headers;
    if (env !== undefined) body.env = env;
    const ok = await save.run(() =>
      unwrap(api.PUT("/api/v1/config/mcp-servers/{server}", { params: { path: { server: v.name }, query: { scope: v.scope, validate: v.validate } }, body })),
    );
    if (ok) onSaved();
  };

  return (
    <Modal
      open={open}
      width={640}
      title={editing ? t("config.editMcp", { name: editing.name }) : t("config.newMcp")}
      onOk={() => void submit()}
      onCancel={onClose}
      confirmLoading={save.saving}
      okText={t("common.save")}
      cancelText={t("common.cancel")}
      okButtonProps={{ "data-testid": "mcp-config-save" } as ButtonProps}
      destroyOnClose
    >
      <ProblemAlert problem={save.problem} />
      <Form form={form} layout="vertical" autoComplete="off" data-testid="mcp-config-form">
        <Space.Compact block>
          <Form.Item name="name" label={t("agents.name")} rules={[{ required: true, pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, message: t("config.nameRule") }]} style={{ flex: 1 }}>
            <Input disabled={editing !== null} data-testid="mcp-config-name" />
          </Form.Item>
          <Form.Item name="scope" label={t("config.scope")} style={{ width: 200, marginLeft: 12 }}>
            <Select disabled={editing !== null || !system} options={(["workspace", "shared"] as const).map((s) => ({ value: s, label: t(`config.scope.${s}`) }))} />
          </Form.Item>
        </Space.Compact>
        <Form.Item name="transport" label={t("mcp.transport")} extra={system ? undefined : t("config.stdioAdmins")}>
          <Radio.Group>
            <Radio value="http" data-testid="mcp-config-http">HTTP</Radio>
            <Radio value="stdio" disabled={!system} data-testid="mcp-config-stdio">stdio</Radio>
          </Radio.Group>
        </Form.Item>
        {transport === "stdio" ? (
          <>
            <Form.Item name="command" label={t("config.command")} rules={[{ required: true }]}>
              <Input data-testid="mcp-config-command" />
            </Form.Item>
            <Form.Item name="args" label={t("config.args")}>
              <Select mode="tags" open={false} data-testid="mcp-config-args" />
            </Form.Item>
            <PairsField name="env" label={t("config.env")} stored={editing?.env_names ?? []} />
          </>
        ) : (
          <>
            <Form.Item name="url" label="URL" rules={[{ required: true }]}>
              <Input placeholder="https://mcp.example.com/mcp" data-testid="mcp-config-url" />
            </Form.Item>
            <PairsField name="headers" label={t("config.headers")} stored={editing?.header_names ?? []} />
          </>
        )}
        <Form.Item name="validate" valuePropName="checked" extra={system ? undefined : t("config.validateAdmins")}>
          <Checkbox disabled={!system} data-testid="mcp-config-validate">{t("config.validateMcp")}</Checkbox>
        </Form.Item>
      </Form>
    </Modal>
  );
}
