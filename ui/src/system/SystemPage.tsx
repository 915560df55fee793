import { Tabs, Typography } from "antd";
import { useSearchParams } from "react-router-dom";
import { useT } from "../i18n";
import { AuditTab } from "../operations/AuditTab";
import { QuotasTab } from "../operations/QuotasTab";
import { RetentionTab } from "../operations/RetentionTab";
import { RedactionTab } from "../privacy/RedactionTab";
import { ApiKeysTab } from "./ApiKeysTab";
import { SecretsTab } from "./SecretsTab";
import { UsersTab } from "./UsersTab";
import { SettingsTab, WorkspacesTab } from "./WorkspacesTab";

export default function SystemPage() {
  const t = useT();
  const [search, setSearch] = useSearchParams();
  return (
    <div data-testid="system-page">
      <Typography.Title level={3}>{t("nav.system")}</Typography.Title>
      <Tabs
        activeKey={search.get("tab") ?? "users"}
        onChange={(tab) => setSearch({ tab })}
        destroyInactiveTabPane
        items={[
          { key: "users", label: <span data-testid="tab-users">{t("system.users")}</span>, children: <UsersTab /> },
          { key: "keys", label: <span data-testid="tab-keys">{t("system.keys")}</span>, children: <ApiKeysTab /> },
          { key: "secrets", label: <span data-testid="tab-secrets">{t("system.secrets")}</span>, children: <SecretsTab /> },
          { key: "workspaces", label: <span data-testid="tab-workspaces">{t("system.workspaces")}</span>, children: <WorkspacesTab /> },
          { key: "quotas", label: <span data-testid="tab-quotas">{t("system.quotas")}</span>, children: <QuotasTab /> },
          { key: "retention", label: <span data-testid="tab-retention">{t("system.retention")}</span>, children: <RetentionTab /> },
          { key: "privacy", label: <span data-testid="tab-privacy">{t("system.privacy")}</span>, children: <RedactionTab /> },
          { key: "audit", label: <span data-testid="tab-audit">{t("system.audit")}</span>, children: <AuditTab /> },
          { key: "settings", label: <span data-testid="tab-settings">{t("system.settings")}</span>, children: <SettingsTab /> },
        ]}
      />
    </div>
  );
}
