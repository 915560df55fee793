// Add or change a model provider. The key is write-only: empty keeps the stored one. Saving
// runs a test call with this very configuration first (system admins may skip it).
import { MinusCircleOutlined, PlusOutlined } from "@ant-design/icons";
import { Button, Checkbox, Form, Input, InputNumber, Modal, Select, Space, type ButtonProps } from "antd";
import { useEffect } from "react";
import { unwrap } from "../api/client";
import type { ProviderConfig, ProviderConfigInput } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { useT } from "../i18n";
import { api } from "../session/store";
import { useSave } from "./useSave";

const FIELDS = ["kind", "base_url", "default_model", "pool_size", "api_key", "prices"] as const;
type Price = { model?: string; prompt?: number; completion?: number };
type Values = Omit<ProviderConfigInput, "prices"> & { name: string; scope: "workspace" | "shared"; validate: boolean; prices?: Price[] };

interface Props {
  open: boolean;
  editing: ProviderConfig | null;
  system: boolean;
  onClose: () => void;
  onSaved: () => void;
}

function initial(item: ProviderConfig | null): Partial<Values> {
  if (!item) return { kind: "openai", scope: "workspace", validate: true, pool_size: 100, prices: [] };
  return {
    name: item.name,
    scope: item.scope === "shared" ? "shared" : "workspace",
    kind: item.kind as Values["kind"],
    base_url: item.base_url,
    default_model: item.default_model,
    pool_size: item.pool_size,
    validate: true,
    prices: Object.entries(item.prices ?? {}).map(([model, p]) => ({ model, prompt: p.prompt, completion: p.completion })),
  };
}

export function ProviderConfigForm({ open, editing, system, onClose, onSaved }: Props) {
  const t = useT();
  const [form] = Form.useForm<Values>();
  const save = useSave(form, FIELDS);
  useEffect(() => {
    if (open) {
      form.resetFields();
      form.setFieldsValue(initial(editing));
      save.clear();
    }
  }, [open, editing]);

  const submit = async () => {
    const v = await form.validateFields();
    const prices = Object.fromEntries((v.prices ?? []).filter((p) => p.model).map((p) => [p.model as string, { prompt: p.prompt ?? 0, completion: p.completion ?? 0 }]));
    const body: ProviderConfigInput = { kind: v.kind, base_url: v.base_url || null, default_model: v.default_model ?? "", pool_size: v.pool_size ?? null, prices };
    if (v.api_key) body.api_key = v.api_key;
    const ok = await save.run(() =>
      unwrap(api.PUT("/api/v1/config/providers/{provider}", { params: { path: { provider: v.name }, query: { scope: v.scope, validate: v.validate } }, body })),
    );
    if (ok) {
      form.setFieldValue("api_key", undefined); // the key leaves the page once stored
      onSaved();
    }
  };

  return (
    <Modal
      open={open}
      width={620}
      title={editing ? t("config.editProvider", { name: editing.name }) : t("config.newProvider")}
      onOk={() => void submit()}
      onCancel={onClose}
      confirmLoading={save.saving}
      okText={t("common.save")}
      cancelText={t("common.cancel")}
      okButtonProps={{ "data-testid": "provider-config-save" } as ButtonProps}
      destroyOnClose
    >
      <ProblemAlert problem={save.problem} />
      <Form form={form} layout="vertical" autoComplete="off" data-testid="provider-config-form">
        <Space.Compact block>
          <Form.Item name="name" label={t("agents.name")} rules={[{ required: true, pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, message: t("config.nameRule") }]} style={{ flex: 1 }}>
            <Input disabled={editing !== null} data-testid="provider-config-name" />
          </Form.Item>
          <Form.Item name="scope" label={t("config.scope")} style={{ width: 200, marginLeft: 12 }}>
            <Select disabled={editing !== null || !system} options={(["workspace", "shared"] as const).map((s) => ({ value: s, label: t(`config.scope.${s}`) }))} />
          </Form.Item>
        </Space.Compact>
        <Form.Item name="kind" label={t("providers.kind")}>
          <Select options={["openai", "anthropic", "offline"].map((k) => ({ value: k, label: k }))} data-testid="provider-config-kind" />
        </Form.Item>
        <Form.Item name="base_url" label={t("providers.baseUrl")}>
          <Input placeholder="https://api.example.com/v1" data-testid="provider-config-base_url" />
        </Form.Item>
        <Form.Item name="default_model" label={t("config.defaultModel")}>
          <Input data-testid="provider-config-default_model" />
        </Form.Item>
        <Form.Item name="pool_size" label={t("config.poolSize")}>
          <InputNumber style={{ width: 160 }} data-testid="provider-config-pool_size" />
        </Form.Item>
        <Form.Item
          name="api_key"
          label={t("config.apiKey")}
          extra={editing?.has_api_key ? t("config.keyStored") : t("config.writeOnly")}
        >
          <Input.Password autoComplete="new-password" visibilityToggle={false} placeholder={editing?.has_api_key ? "••••••••" : ""} data-testid="provider-config-api_key" />
        </Form.Item>
        <Form.List name="prices">
          {(rows, { add, remove }) => (
            <Form.Item label={t("config.prices")} extra={t("config.pricesHelp")}>
              {rows.map(({ key, name }) => (
                <Space key={key} align="baseline">
                  <Form.Item name={[name, "model"]} rules={[{ required: true }]}><Input placeholder={t("config.model")} /></Form.Item>
                  <Form.Item name={[name, "prompt"]}><InputNumber placeholder={t("config.promptPrice")} style={{ width: 140 }} /></Form.Item>
                  <Form.Item name={[name, "completion"]}><InputNumber placeholder={t("config.completionPrice")} style={{ width: 150 }} /></Form.Item>
                  <MinusCircleOutlined onClick={() => remove(name)} />
                </Space>
              ))}
              <Button type="dashed" icon={<PlusOutlined />} onClick={() => add({})}>{t("config.addPrice")}</Button>
            </Form.Item>
          )}
        </Form.List>
        <Form.Item name="validate" valuePropName="checked" extra={system ? undefined : t("config.validateAdmins")}>
          <Checkbox disabled={!system} data-testid="provider-config-validate">{t("config.validate")}</Checkbox>
        </Form.Item>
      </Form>
    </Modal>
  );
}
