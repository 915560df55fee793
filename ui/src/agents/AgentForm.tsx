// Register or edit an agent.
import { Form, Input, InputNumber, Modal, Select } from "antd";
import { useEffect, useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { Agent, AgentInput } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { useT } from "../i18n";
import { api } from "../session/store";

interface Props {
  open: boolean;
  agent: Agent | null; // null: register a new one
  onClose: () => void;
  onSaved: () => void;
}

interface Values {
  name: string;
  type: AgentInput["type"];
  capabilities: string[];
  capacity?: number;
  weight?: number;
  config: string;
}

const TYPES: AgentInput["type"][] = ["llm", "mcp", "http", "worker"];

export function AgentForm({ open, agent, onClose, onSaved }: Props) {
  const t = useT();
  const [form] = Form.useForm<Values>();
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!open) return;
    setProblem(null);
    form.setFieldsValue({
      name: agent?.name ?? "",
      type: agent?.type ?? "http",
      capabilities: agent?.capabilities ?? [],
      capacity: agent?.capacity ?? 10,
      weight: agent?.weight ?? 1,
      config: JSON.stringify(agent?.config ?? {}, null, 2),
    });
  }, [open, agent, form]);

  const submit = async () => {
    const values = await form.validateFields();
    const config = JSON.parse(values.config || "{}") as AgentInput["config"];
    setBusy(true);
    try {
      if (agent) {
        await unwrap(
          api.PATCH("/api/v1/agents/{agent_id}", {
            params: { path: { agent_id: agent.id } },
            body: { capabilities: values.capabilities, capacity: values.capacity, weight: values.weight, config },
          }),
        );
      } else {
        await unwrap(
          api.POST("/api/v1/agents/register", {
            body: {
              name: values.name,
              type: values.type,
              capabilities: values.capabilities,
              capacity: values.capacity ?? 10,
              weight: values.weight ?? 1,
              config,
            },
          }),
        );
      }
      onSaved();
      onClose();
    } catch (failure) {
      setProblem(problemOf(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      open={open}
      title={agent ? t("agents.edit", { name: agent.name }) : t("agents.register")}
      onOk={() => void submit()}
      onCancel={onClose}
      confirmLoading={busy}
      okText={t("common.save")}
      cancelText={t("common.cancel")}
      destroyOnClose
    >
      <ProblemAlert problem={problem} />
      <Form form={form} layout="vertical" data-testid="agent-form">
        <Form.Item name="name" label={t("agents.name")} rules={[{ required: true }]}>
          <Input disabled={agent !== null} data-testid="agent-name" />
        </Form.Item>
        <Form.Item name="type" label={t("agents.type")} rules={[{ required: true }]}>
          <Select disabled={agent !== null} options={TYPES.map((v) => ({ value: v, label: v }))} data-testid="agent-type" />
        </Form.Item>
        <Form.Item name="capabilities" label={t("agents.capabilities")}>
          <Select mode="tags" tokenSeparators={[","]} open={false} data-testid="agent-capabilities" />
        </Form.Item>
        <Form.Item name="capacity" label={t("agents.capacity")}>
          <InputNumber min={1} style={{ width: "100%" }} data-testid="agent-capacity" />
        </Form.Item>
        <Form.Item name="weight" label={t("agents.weight")}>
          <InputNumber min={1} style={{ width: "100%" }} />
        </Form.Item>
        <Form.Item
          name="config"
          label={t("agents.config")}
          rules={[{ validator: async (_, text: string) => void JSON.parse(text || "{}") }]}
        >
          <Input.TextArea className="cz-mono" autoSize={{ minRows: 3 }} data-testid="agent-config" />
        </Form.Item>
      </Form>
    </Modal>
  );
}
