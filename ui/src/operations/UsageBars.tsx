// Usage against the limits in force: one bar per limit, "unlimited" when none applies.
import { Progress, Tag, Typography } from "antd";
import type { Usage } from "../api/types";
import { useT } from "../i18n";
import { formatAmount, usageRows, type Level } from "./quotas";

const STATUS: Record<Level, "normal" | "active" | "exception" | "success"> = { unlimited: "normal", ok: "normal", warn: "active", full: "exception" };
const STROKE: Partial<Record<Level, string>> = { warn: "#f59f00" };

export function UsageBars({ usage }: { usage: Usage }) {
  const t = useT();
  return (
    <div className="cz-usage" data-testid="quota-usage">
      {usageRows(usage).map((row) => (
        <div key={row.key} className="cz-usage-row" data-testid={`usage-${row.key}`} data-level={row.level}>
          <Typography.Text strong className="cz-usage-label">{t(`quota.${row.key}`)}</Typography.Text>
          {row.percent === null ? (
            <span>
              <Tag color="default" data-testid={`usage-${row.key}-unlimited`}>{t("quota.unlimited")}</Tag>
              <Typography.Text type="secondary">{t("quota.usedOnly", { used: formatAmount(row.key, row.used) })}</Typography.Text>
            </span>
          ) : (
            <span className="cz-usage-bar">
              <Progress percent={Math.round(row.percent * 10) / 10} status={STATUS[row.level]} strokeColor={STROKE[row.level]} showInfo={false} />
              <Typography.Text data-testid={`usage-${row.key}-text`}>
                {formatAmount(row.key, row.used)} / {formatAmount(row.key, row.limit ?? 0)}
              </Typography.Text>
            </span>
          )}
        </div>
      ))}
      <Typography.Text type="secondary">{t("quota.periods", { day: usage.today.period, month: usage.this_month.period })}</Typography.Text>
    </div>
  );
}
