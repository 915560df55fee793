// Where a stored value was redacted (PII rules of the workspace): the field, the JSON path
// inside it and the detectors that matched. The values themselves are never shown.
import { EyeInvisibleOutlined } from "@ant-design/icons";
import { Tag, Tooltip } from "antd";
import type { Redacted } from "../api/types";
import { useT } from "../i18n";

export function RedactedNote({ redacted, testId }: { redacted: Redacted[] | undefined; testId?: string }) {
  const t = useT();
  if (!redacted || redacted.length === 0) return null;
  const lines = redacted.map((r) => `${r.field} ${r.path}: ${r.detectors.join(", ")}`);
  return (
    <Tooltip title={<div>{lines.map((l) => <div key={l}>{l}</div>)}</div>}>
      <Tag color="gold" icon={<EyeInvisibleOutlined />} data-testid={testId} data-count={redacted.length}>
        {t("pii.redactedCount", { count: redacted.length })}
      </Tag>
    </Tooltip>
  );
}
