// The right-hand panel: the selected node (id, config, settings, problems) or the process itself.
import { DeleteOutlined } from "@ant-design/icons";
import { Alert, Button, Collapse, Empty, Input, Popconfirm, Space, Tag, Typography } from "antd";
import { useMemo, useState } from "react";
import { schemaToFields } from "../forms/fields";
import { SchemaForm } from "../forms/SchemaForm";
import { useT } from "../i18n";
import { isJsonObject, type JsonObject } from "./definition";
import { NODE_SETTINGS_SCHEMA } from "./nodeSettings";
import { ProcessPanel } from "./ProcessPanel";
import { useGraph } from "./store";
import { variablesFor } from "./variables";

const SETTINGS_FIELDS = schemaToFields(NODE_SETTINGS_SCHEMA);

function NodeId({ id }: { id: string }) {
  const t = useT();
  const rename = useGraph((s) => s.renameNode);
  const [draft, setDraft] = useState(id);
  const [error, setError] = useState<string | null>(null);
  const commit = () => {
    const problem = rename(id, draft.trim());
    setError(problem ? t(problem === "slug" ? "designer.idSlug" : "designer.idTaken") : null);
  };
  return (
    <div style={{ marginBottom: 12 }}>
      <Typography.Text type="secondary">{t("designer.nodeId")}</Typography.Text>
      <Input
        value={draft}
        status={error ? "error" : undefined}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onPressEnter={commit}
        data-testid="inspector-id"
      />
      {error && <Typography.Text type="danger">{error}</Typography.Text>}
    </div>
  );
}

function NodeInspector({ id }: { id: string }) {
  const t = useT();
  const node = useGraph((s) => s.nodes.find((n) => n.id === id));
  const registry = useGraph((s) => s.registry);
  const revision = useGraph((s) => s.revision);
  const problems = useGraph((s) => s.problems.byNode[id]);
  const nodes = useGraph((s) => s.nodes);
  const edges = useGraph((s) => s.edges);
  const meta = useGraph((s) => s.meta);
  const { updateSpec, removeNode } = useGraph.getState();
  const type = node?.data.spec.type ?? "";
  const kind = registry.get(type);
  const configFields = useMemo(
    () => schemaToFields(kind.info.config_schema as JsonObject, { templates: true, omit: kind.info.has_body ? ["body"] : [] }),
    [kind],
  );
  const variables = useMemo(() => variablesFor({ meta, nodes, edges }, id, registry), [meta, nodes, edges, id, registry]);
  const [fieldErrors, setFieldErrors] = useState<string[]>([]);
  if (!node) return null;
  const spec = () => useGraph.getState().nodes.find((n) => n.id === id)?.data.spec ?? node.data.spec;
  const formKey = `${id}:${revision}`;
  return (
    <div data-testid="inspector-node">
      <Space style={{ marginBottom: 8 }} wrap>
        <Tag color={kind.color}>{type}</Tag>
        {!kind.known && <Tag color="red">{t("designer.unknownType")}</Tag>}
      </Space>
      <Typography.Paragraph type="secondary" style={{ fontSize: 12 }}>
        {kind.info.description}
      </Typography.Paragraph>
      <NodeId key={formKey} id={id} />
      {problems && problems.length > 0 && (
        <Alert
          type="error"
          showIcon
          style={{ marginBottom: 12 }}
          data-testid="inspector-problems"
          message={t("designer.problemsHere", { count: problems.length })}
          description={
            <ul className="cz-problem-list">
              {problems.map((p, i) => (
                <li key={i}>
                  <code>{p.path}</code> {p.message}
                </li>
              ))}
            </ul>
          }
        />
      )}
      {fieldErrors.length > 0 && <Alert type="warning" style={{ marginBottom: 12 }} message={fieldErrors.join("; ")} />}
      <Collapse
        defaultActiveKey={["config"]}
        size="small"
        items={[
          {
            key: "config",
            label: t("designer.config"),
            children:
              configFields.length === 0 && !isJsonObject(kind.info.config_schema["properties"]) ? (
                <Empty image={Empty.PRESENTED_IMAGE_SIMPLE} description={t("designer.noConfig")} />
              ) : (
                <SchemaForm
                  key={formKey}
                  testId="config"
                  fields={configFields}
                  value={node.data.spec.config}
                  variables={variables}
                  onChange={(config, errors) => {
                    setFieldErrors(errors.map((e) => `${e.path}: ${e.message}`));
                    updateSpec(id, { ...spec(), config });
                  }}
                />
              ),
          },
          {
            key: "settings",
            label: t("designer.nodeSettings"),
            children: (
              <SchemaForm
                key={formKey}
                testId="settings"
                fields={SETTINGS_FIELDS}
                value={node.data.spec as JsonObject}
                onChange={(next) => updateSpec(id, { ...next, type, config: spec().config })}
              />
            ),
          },
        ]}
      />
      <Popconfirm title={t("designer.deleteNode", { id })} onConfirm={() => removeNode(id)} okText={t("common.delete")} cancelText={t("common.cancel")}>
        <Button danger block icon={<DeleteOutlined />} style={{ marginTop: 12 }} data-testid="inspector-delete">
          {t("common.delete")}
        </Button>
      </Popconfirm>
    </div>
  );
}

export function Inspector() {
  const selected = useGraph((s) => s.selected);
  const exists = useGraph((s) => (selected ? s.nodes.some((n) => n.id === selected) : false));
  return (
    <div className="cz-inspector" data-testid="inspector">
      {selected && exists ? <NodeInspector key={selected} id={selected} /> : <ProcessPanel />}
    </div>
  );
}
