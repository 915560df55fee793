import { Alert, Button } from "antd";
import type { Problem } from "../api/problem";
import { useT } from "../i18n";

/** An API problem as a user sees it: its title, its detail and any field errors. */
export function ProblemAlert({ problem, onRetry }: { problem: Problem | null; onRetry?: () => void }) {
  const t = useT();
  if (!problem) return null;
  const errors = (problem.errors ?? []).map((e) => (typeof e === "string" ? e : JSON.stringify(e)));
  return (
    <Alert
      data-testid="problem"
      type="error"
      showIcon
      style={{ marginBottom: 16 }}
      message={problem.status ? `${problem.title} (${problem.status})` : problem.title}
      description={
        problem.detail || errors.length > 0 ? (
          <>
            {problem.detail && <div>{problem.detail}</div>}
            {errors.length > 0 && (
              <ul style={{ margin: "4px 0 0", paddingLeft: 18 }}>
                {errors.map((e, i) => (
                  <li key={i}>{e}</li>
                ))}
              </ul>
            )}
          </>
        ) : undefined
      }
      action={
        onRetry ? (
          <Button size="small" onClick={onRetry} data-testid="problem-retry">
            {t("common.retry")}
          </Button>
        ) : undefined
      }
    />
  );
}
