// Monitoring dashboard: active instances, task rate, latency and agent response time, sampled by
// the server from the same data as the Prometheus metrics.
import { ReloadOutlined } from "@ant-design/icons";
import { Button, Space, Spin, Typography } from "antd";
import { lazy, Suspense, useEffect } from "react";
import { unwrap } from "../api/client";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api } from "../session/store";

const MetricsCharts = lazy(() => import("./MetricsCharts"));
const REFRESH_MS = 10000;

export default function DashboardPage() {
  const t = useT();
  const metrics = useLoad(() => unwrap(api.GET("/api/v1/metrics/series")), []);
  const { reload } = metrics;
  useEffect(() => {
    const timer = setInterval(() => void reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);
  const data = metrics.data;
  return (
    <div data-testid="dashboard-page">
      <Space style={{ width: "100%", justifyContent: "space-between", marginBottom: 16 }} wrap>
        <Space align="baseline">
          <Typography.Title level={3} style={{ margin: 0 }}>{t("nav.dashboard")}</Typography.Title>
          {data && data.window_s > 0 && (
            <Typography.Text type="secondary">
              {t("dashboard.window", { minutes: Math.round(data.window_s / 60), seconds: data.interval_s })}
            </Typography.Text>
          )}
        </Space>
        <Button icon={<ReloadOutlined />} onClick={() => void reload()}>{t("common.refresh")}</Button>
      </Space>
      <ProblemAlert problem={metrics.error} onRetry={() => void reload()} />
      {data ? (
        <Suspense fallback={<Spin />}>
          <MetricsCharts metrics={data} />
        </Suspense>
      ) : (
        metrics.loading && <Spin />
      )}
    </div>
  );
}
