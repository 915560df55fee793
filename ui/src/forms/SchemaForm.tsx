// A form generated from a JSON Schema (see fields.ts), editing a config object live.
import { DeleteOutlined, PlusOutlined } from "@ant-design/icons";
import { AutoComplete, Button, Card, Form, Input, InputNumber, Select, Switch } from "antd";
import type { Rule } from "antd/es/form";
import { useMemo } from "react";
import type { JsonObject } from "../designer/definition";
import type { Variable } from "../designer/variables";
import { useT } from "../i18n";
import type { FieldSpec } from "./fields";
import { configToValues, valuesToConfig, type FieldError } from "./values";
import { VariableInput } from "./VariableInput";

export interface SchemaFormProps {
  fields: readonly FieldSpec[];
  value: JsonObject | undefined;
  onChange: (config: JsonObject, errors: FieldError[]) => void;
  variables?: readonly Variable[];
  testId: string;
}

type Name = (string | number)[];

function jsonRule(field: FieldSpec): Rule {
  return {
    validator: async (_, text: unknown) => {
      if (typeof text !== "string" || text.trim() === "") return;
      const value: unknown = JSON.parse(text); // throws: the message shows under the field
      if (field.shape === "object" && (typeof value !== "object" || value === null || Array.isArray(value))) {
        throw new Error("expected a JSON object");
      }
      if (field.shape === "array" && !Array.isArray(value)) throw new Error("expected a JSON array");
    },
  };
}

interface ControlProps {
  field: FieldSpec;
  testId: string;
  variables?: readonly Variable[];
  /** value, onChange, checked, id: injected by the enclosing Form.Item and passed through */
  [injected: string]: unknown;
}

function Control({ field, testId, variables, ...injected }: ControlProps) {
  const props = { ...injected, "data-testid": testId };
  switch (field.kind) {
    case "string":
    case "text":
      if (field.variables && variables) {
        return (
          <VariableInput
            {...(injected as { value?: string; onChange?: (v: string) => void })}
            multiline={field.kind === "text"}
            variables={variables}
            mode={field.variables}
            testId={testId}
          />
        );
      }
      return field.kind === "text" ? <Input.TextArea autoSize={{ minRows: 2 }} {...props} /> : <Input {...props} />;
    case "number":
    case "integer":
      return (
        <InputNumber
          style={{ width: "100%" }}
          min={field.minimum}
          max={field.maximum}
          precision={field.kind === "integer" ? 0 : undefined}
          {...props}
        />
      );
    case "boolean":
      return <Switch {...props} />;
    case "enum":
      return <Select allowClear options={(field.options ?? []).map((o) => ({ value: o, label: String(o) }))} {...props} />;
    case "string-list":
      return <Select mode="tags" tokenSeparators={[","]} open={false} suffixIcon={null} {...props} />;
    case "scalar":
      return field.options?.length ? (
        <AutoComplete options={field.options.map((o) => ({ value: String(o) }))} {...props} />
      ) : (
        <Input {...props} />
      );
    default:
      return <Input.TextArea className="cz-mono" autoSize={{ minRows: 2, maxRows: 14 }} spellCheck={false} {...props} />;
  }
}

interface FieldsProps {
  fields: readonly FieldSpec[];
  /** The antd form name the fields sit under (list items: relative to the list). */
  prefix: Name;
  testId: string;
  variables?: readonly Variable[];
}

function Fields(props: FieldsProps) {
  const t = useT();
  return (
    <>
      {props.fields.map((field) => {
        const name = [...props.prefix, field.key];
        const testId = `${props.testId}-${field.key}`;
        const label = <span title={field.description}>{field.key}</span>;
        if (field.kind === "object") {
          return (
            <Card key={field.key} size="small" title={label} className="cz-subform">
              <Fields fields={field.fields ?? []} prefix={name} testId={testId} variables={props.variables} />
            </Card>
          );
        }
        if (field.kind === "object-list") {
          return (
            <Form.Item key={field.key} label={label} required={field.required} tooltip={field.description}>
              <Form.List name={name}>
                {(items, { add, remove }) => (
                  <>
                    {items.map((item) => (
                      <Card
                        key={item.key}
                        size="small"
                        className="cz-subform"
                        extra={
                          <Button size="small" type="text" icon={<DeleteOutlined />} onClick={() => remove(item.name)} data-testid={`${testId}-${item.name}-remove`} aria-label={t("common.remove")} />
                        }
                      >
                        <Fields fields={field.fields ?? []} prefix={[item.name]} testId={`${testId}-${item.name}`} variables={props.variables} />
                      </Card>
                    ))}
                    <Button block type="dashed" icon={<PlusOutlined />} onClick={() => add({})} data-testid={`${testId}-add`}>
                      {t("common.add")}
                    </Button>
                  </>
                )}
              </Form.List>
            </Form.Item>
          );
        }
        return (
          <Form.Item
            key={field.key}
            name={name}
            label={label}
            required={field.required}
            tooltip={field.description}
            valuePropName={field.kind === "boolean" ? "checked" : "value"}
            rules={field.kind === "json" ? [jsonRule(field)] : undefined}
          >
            <Control field={field} testId={testId} variables={props.variables} />
          </Form.Item>
        );
      })}
    </>
  );
}

/** Remount (give it a new `key`) to show a config changed from elsewhere. */
export function SchemaForm({ fields, value, onChange, variables, testId }: SchemaFormProps) {
  // Only the first value: the form owns its state until it is remounted.
  const initial = useMemo(() => configToValues(fields, value), [fields]);
  return (
    <Form
      layout="vertical"
      size="small"
      initialValues={initial}
      onValuesChange={(_, all) => {
        const { config, errors } = valuesToConfig(fields, all, value);
        onChange(config, errors);
      }}
    >
      <Fields fields={fields} prefix={[]} testId={testId} variables={variables} />
    </Form>
  );
}
