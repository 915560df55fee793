// The audit view's filters: actor, action (prefix), target and a time range.
import { DownloadOutlined, ReloadOutlined } from "@ant-design/icons";
import { AutoComplete, Button, DatePicker, Input, Space } from "antd";
import dayjs, { type Dayjs, type ManipulateType } from "dayjs";
import { useState } from "react";
import { useT, type MessageKey } from "../i18n";
import type { AuditFilters } from "./audit";

/** Action families of docs/audit.md, offered as prefixes; any text is accepted. */
const FAMILIES = [
  "definition.", "instance.", "task.", "agent.", "mcp_tool.", "auth.", "auth.login", "user.", "workspace.",
  "membership.", "api_key.", "secret.", "quota.", "retention.",
];

function ActionFilter({ initial, onApply }: { initial?: string; onApply: (action: string | undefined) => void }) {
  const t = useT();
  const [text, setText] = useState(initial ?? "");
  return (
    <AutoComplete
      value={text}
      options={FAMILIES.filter((f) => f.startsWith(text)).map((f) => ({ value: f }))}
      onChange={setText}
      onSelect={(v: string) => onApply(v)}
      style={{ width: 190 }}
    >
      <Input.Search allowClear placeholder={t("audit.action")} onSearch={(v) => onApply(v.trim() || undefined)} data-testid="audit-filter-action" />
    </AutoComplete>
  );
}

const PRESETS: [MessageKey, number, ManipulateType][] = [
  ["audit.lastHour", 1, "hour"],
  ["audit.lastDay", 24, "hour"],
  ["audit.lastWeek", 7, "day"],
];

interface Props {
  value: AuditFilters;
  onChange: (next: AuditFilters) => void;
  onReload: () => void;
  onExport: () => void;
  exporting: boolean;
}

export function AuditFilterBar({ value, onChange, onReload, onExport, exporting }: Props) {
  const t = useT();
  const text = (key: "actor" | "target_type" | "target_id", placeholder: string) => (
    <Input.Search
      allowClear
      key={`${key}:${value[key] ?? ""}`}
      defaultValue={value[key]}
      placeholder={placeholder}
      onSearch={(v) => onChange({ ...value, [key]: v || undefined })}
      style={{ width: 190 }}
      data-testid={`audit-filter-${key}`}
    />
  );
  const range = (dates: [Dayjs | null, Dayjs | null] | null) =>
    onChange({ ...value, since: dates?.[0]?.valueOf() ?? undefined, until: dates?.[1]?.valueOf() ?? undefined });
  return (
    <Space wrap style={{ marginBottom: 12 }}>
      {text("actor", t("audit.actor"))}
      <ActionFilter key={value.action ?? ""} initial={value.action} onApply={(action) => onChange({ ...value, action })} />
      {text("target_type", t("audit.targetType"))}
      {text("target_id", t("audit.targetId"))}
      <DatePicker.RangePicker
        showTime
        allowEmpty={[true, true]}
        onChange={range}
        presets={PRESETS.map(([label, amount, unit]) => ({ label: t(label), value: () => [dayjs().subtract(amount, unit), dayjs()] as [Dayjs, Dayjs] }))}
        data-testid="audit-filter-range"
      />
      <Button icon={<ReloadOutlined />} onClick={onReload} data-testid="audit-reload">{t("common.refresh")}</Button>
      <Button icon={<DownloadOutlined />} loading={exporting} onClick={onExport} data-testid="audit-export">{t("audit.export")}</Button>
    </Space>
  );
}
