import { Tabs, Typography } from "antd";
import { useSearchParams } from "react-router-dom";
import { useT } from "../i18n";
import { AgentsTab } from "./AgentsTab";
import { McpTab } from "./McpTab";
import { ProvidersTab } from "./ProvidersTab";

export default function AgentsPage() {
  const t = useT();
  const [search, setSearch] = useSearchParams();
  return (
    <div data-testid="agents-page">
      <Typography.Title level={3}>{t("nav.agents")}</Typography.Title>
      <Tabs
        activeKey={search.get("tab") ?? "agents"}
        onChange={(tab) => setSearch({ tab })}
        destroyInactiveTabPane
        items={[
          { key: "agents", label: <span data-testid="tab-agents">{t("agents.agents")}</span>, children: <AgentsTab /> },
          { key: "mcp", label: <span data-testid="tab-mcp">{t("agents.mcp")}</span>, children: <McpTab /> },
          { key: "providers", label: <span data-testid="tab-providers">{t("agents.providers")}</span>, children: <ProvidersTab /> },
        ]}
      />
    </div>
  );
}
