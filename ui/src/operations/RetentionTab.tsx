// Retention of the current workspace: its policy, and the legal holds that override it.
import { Card, Spin } from "antd";
import { unwrap } from "../api/client";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { LegalHoldsTable } from "./LegalHoldsTable";
import { RetentionForm } from "./RetentionForm";

export function RetentionTab() {
  const t = useT();
  const workspace = useSession((s) => s.workspace) ?? "default";
  const policy = useLoad(
    () => unwrap(api.GET("/api/v1/workspaces/{workspace_id}/retention", { params: { path: { workspace_id: workspace } } })),
    [workspace],
  );
  return (
    <div data-testid="retention-tab" className="cz-quota-cards">
      <Card size="small" title={t("retention.policy")}>
        <ProblemAlert problem={policy.error} onRetry={() => void policy.reload()} />
        {policy.data ? <RetentionForm policy={policy.data} onSaved={policy.reload} /> : policy.loading && <Spin />}
      </Card>
      <Card size="small" title={t("hold.title")}>
        <LegalHoldsTable workspace={workspace} />
      </Card>
    </div>
  );
}
