// Charts of the metrics series (`GET /metrics/series`), with ECharts tree-shaken to what they use;
// this module is loaded lazily.
import { LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { Card, Col, Empty, Row } from "antd";
import { useEffect, useRef } from "react";
import type { MetricsSeries } from "../api/types";
import { useT, type MessageKey } from "../i18n";

echarts.use([LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

/** Which series go in which chart; series the server adds later land in "other". */
export const CHARTS: { key: string; title: MessageKey; series: string[]; unit: string }[] = [
  { key: "active", title: "metric.active", series: ["instances_active", "queue_depth"], unit: "" },
  { key: "rate", title: "metric.rate", series: ["task_rate"], unit: "/s" },
  { key: "latency", title: "metric.latency", series: ["task_latency_p50", "task_latency_p95"], unit: "s" },
  { key: "agents", title: "metric.agents", series: ["agent_response_p50", "agent_response_p95"], unit: "s" },
];

function Chart({ times, lines, unit, testId }: { times: number[]; lines: [string, (number | null)[]][]; unit: string; testId: string }) {
  const element = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!element.current) return;
    const chart = echarts.init(element.current);
    chart.setOption({
      grid: { left: 48, right: 16, top: 28, bottom: 28 },
      tooltip: { trigger: "axis" },
      legend: { top: 0, textStyle: { fontSize: 11 } },
      xAxis: { type: "time" },
      yAxis: { type: "value", name: unit, nameTextStyle: { align: "left" } },
      series: lines.map(([name, values]) => ({
        type: "line",
        name,
        showSymbol: false,
        connectNulls: false,
        data: values.map((v, i) => [(times[i] ?? 0) * 1000, v]),
      })),
    });
    const observer = new ResizeObserver(() => chart.resize());
    observer.observe(element.current);
    return () => {
      observer.disconnect();
      chart.dispose();
    };
  }, [times, lines, unit]);
  return <div ref={element} style={{ height: 220 }} data-testid={testId} />;
}

export default function MetricsCharts({ metrics }: { metrics: MetricsSeries }) {
  const t = useT();
  const known = new Set(CHARTS.flatMap((c) => c.series));
  const other = Object.keys(metrics.series).filter((name) => !known.has(name));
  const charts = other.length ? [...CHARTS, { key: "other", title: "metric.other" as MessageKey, series: other, unit: "" }] : CHARTS;
  if (metrics.t.length === 0) return <Empty description={t("dashboard.noData")} data-testid="dashboard-empty" />;
  return (
    <Row gutter={[16, 16]}>
      {charts.map((chart) => {
        const lines = chart.series.flatMap((name): [string, (number | null)[]][] => {
          const values = metrics.series[name];
          return values ? [[name, values]] : [];
        });
        return (
          <Col xs={24} lg={12} key={chart.key}>
            <Card size="small" title={t(chart.title)}>
              {lines.length === 0 ? (
                <Empty image={Empty.PRESENTED_IMAGE_SIMPLE} description={t("dashboard.noData")} />
              ) : (
                <Chart times={metrics.t} lines={lines} unit={chart.unit} testId={`chart-${chart.key}`} />
              )}
            </Card>
          </Col>
        );
      })}
    </Row>
  );
}
