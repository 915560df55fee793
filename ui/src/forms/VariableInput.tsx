// A text box for templates and expressions, with the variables in scope one click away.
import { Button, Dropdown, Input, Tooltip } from "antd";
import type { MenuProps } from "antd";
import { useRef, type SyntheticEvent } from "react";
import type { Variable } from "../designer/variables";
import { useT } from "../i18n";

interface Props {
  value?: string;
  onChange?: (value: string) => void;
  multiline?: boolean;
  variables: readonly Variable[];
  mode: "template" | "expression";
  testId: string;
}

export function VariableInput({ value = "", onChange, multiline, variables, mode, testId }: Props) {
  const t = useT();
  const caret = useRef<number | null>(null);
  const remember = (e: SyntheticEvent<HTMLInputElement | HTMLTextAreaElement>) => {
    caret.current = e.currentTarget.selectionStart;
  };
  const insert = (path: string) => {
    const text = mode === "template" ? `{{ ${path} }}` : path;
    const at = caret.current ?? value.length;
    onChange?.(value.slice(0, at) + text + value.slice(at));
    caret.current = at + text.length;
  };
  const groups: Variable["group"][] = ["inputs", "vars", "nodes", "scope"];
  const items: MenuProps["items"] = groups
    .map((group) => ({
      type: "group" as const,
      key: group,
      label: t(`variables.${group}`),
      children: variables
        .filter((v) => v.group === group)
        .map((v) => ({ key: v.path, label: <code data-testid={`variable-${v.path}`}>{v.path}</code> })),
    }))
    .filter((g) => g.children.length > 0);
  const picker = (
    <Dropdown
      menu={{ items, onClick: ({ key }) => insert(key) }}
      trigger={["click"]}
      disabled={variables.length === 0}
    >
      <Tooltip title={t("variables.insert")}>
        <Button size="small" type="text" data-testid={`${testId}-variables`}>
          {mode === "template" ? "{{ }}" : "x"}
        </Button>
      </Tooltip>
    </Dropdown>
  );
  const common = {
    value,
    onChange: (e: { target: { value: string } }) => onChange?.(e.target.value),
    onSelect: remember,
    onKeyUp: remember,
    onClick: remember,
    "data-testid": testId,
    spellCheck: false,
  };
  if (!multiline) return <Input {...common} className="cz-mono" addonAfter={picker} />;
  return (
    <div className="cz-textarea-with-picker">
      <Input.TextArea {...common} className="cz-mono" autoSize={{ minRows: 2, maxRows: 12 }} />
      <div className="cz-picker">{picker}</div>
    </div>
  );
}
