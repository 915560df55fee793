// Name/value rows for credentials (HTTP headers, environment variables): values are
// write-only; the names already stored are listed, and kept unless "replace" is ticked.
import { MinusCircleOutlined, PlusOutlined } from "@ant-design/icons";
import { Button, Checkbox, Form, Input, Space, Tag, Typography } from "antd";
import { useT } from "../i18n";

interface Props {
  name: "headers" | "env";
  label: string;
  stored: string[];
}

export function PairsField({ name, label, stored }: Props) {
  const t = useT();
  const replace = Form.useWatch(`replace_${name}`);
  const editing = stored.length === 0 || Boolean(replace);
  return (
    <Form.Item label={label}>
      {stored.length > 0 && (
        <div style={{ marginBottom: 8 }}>
          <Typography.Text type="secondary">{t("config.storedNames")} </Typography.Text>
          {stored.map((n) => <Tag key={n}>{n}</Tag>)}
          <Form.Item name={`replace_${name}`} valuePropName="checked" noStyle>
            <Checkbox data-testid={`mcp-config-replace-${name}`}>{t("config.replaceValues")}</Checkbox>
          </Form.Item>
        </div>
      )}
      {editing && (
        <Form.List name={name}>
          {(rows, { add, remove }) => (
            <>
              {rows.map(({ key, name: row }) => (
                <Space key={key} align="baseline">
                  <Form.Item name={[row, "name"]} rules={[{ required: true }]}><Input placeholder={t("agents.name")} data-testid={`mcp-config-${name}-name-${row}`} /></Form.Item>
                  <Form.Item name={[row, "value"]}>
                    <Input.Password autoComplete="new-password" visibilityToggle={false} placeholder={t("secrets.value")} data-testid={`mcp-config-${name}-value-${row}`} />
                  </Form.Item>
                  <MinusCircleOutlined onClick={() => remove(row)} />
                </Space>
              ))}
              <Button type="dashed" size="small" icon={<PlusOutlined />} onClick={() => add({})} data-testid={`mcp-config-${name}-add`}>{t("common.add")}</Button>
            </>
          )}
        </Form.List>
      )}
    </Form.Item>
  );
}
