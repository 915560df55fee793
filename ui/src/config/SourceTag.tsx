// Where a configuration item comes from: the environment (read-only), shared, or this workspace.
import { LockOutlined } from "@ant-design/icons";
import { Tag, Tooltip } from "antd";
import { useT } from "../i18n";
import type { Scope } from "./config";

const COLORS: Record<Scope, string> = { environment: "default", shared: "purple", workspace: "blue" };

export function SourceTag({ scope, testId }: { scope: Scope; testId?: string }) {
  const t = useT();
  const tag = (
    <Tag color={COLORS[scope]} icon={scope === "environment" ? <LockOutlined /> : undefined} data-testid={testId} data-scope={scope}>
      {t(`config.scope.${scope}`)}
    </Tag>
  );
  return scope === "environment" ? <Tooltip title={t("config.readOnly")}>{tag}</Tooltip> : tag;
}
