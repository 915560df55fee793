// Model providers, with a "test connection" per provider.
import { ApiOutlined, ReloadOutlined } from "@ant-design/icons";
import { Button, Empty, Table, Tag, Tooltip } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import { problemOf } from "../api/problem";
import type { Provider, ProviderTest } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { ProviderConfigs } from "../config/ProviderConfigs";
import { api, useSession } from "../session/store";

export function ProvidersTab() {
  const t = useT();
  const providers = useLoad(() => unwrap(api.GET("/api/v1/providers")), []);
  const manage = useSession((s) => s.me?.permissions.includes("manage") ?? false);
  const [results, setResults] = useState<Record<string, ProviderTest | "testing">>({});

  const test = async (name: string) => {
    setResults((r) => ({ ...r, [name]: "testing" }));
    let result: ProviderTest;
    try {
      result = await unwrap(api.POST("/api/v1/providers/{name}/test", { params: { path: { name } } }));
    } catch (failure) {
      const p = problemOf(failure);
      result = { ok: false, latency_ms: 0, detail: p.detail ? `${p.title}: ${p.detail}` : p.title };
    }
    setResults((r) => ({ ...r, [name]: result }));
  };

  return (
    <div data-testid="providers-tab">
      <Button icon={<ReloadOutlined />} onClick={() => void providers.reload()} style={{ marginBottom: 12 }}>{t("common.refresh")}</Button>
      <ProblemAlert problem={providers.error} onRetry={() => void providers.reload()} />
      <Table<Provider>
        rowKey="name"
        loading={providers.loading}
        dataSource={providers.data ?? []}
        data-testid="providers-table"
        locale={{ emptyText: <Empty description={t("providers.empty")} /> }}
        columns={[
          {
            title: t("agents.name"),
            dataIndex: "name",
            render: (n: string, p) => (
              <span>
                <b>{n}</b> {p.default && <Tag color="blue">{t("providers.default")}</Tag>}
              </span>
            ),
          },
          {
            title: t("providers.kind"),
            dataIndex: "kind",
            render: (v: string) => <Tag color={v === "offline" ? "purple" : undefined}>{v === "offline" ? t("providers.offline") : v}</Tag>,
          },
          { title: t("providers.baseUrl"), dataIndex: "base_url", render: (v: string | null) => (v ? <code>{v}</code> : "—") },
          {
            title: t("providers.models"),
            dataIndex: "models",
            render: (models: string[]) => (models.length ? models.slice(0, 4).map((m) => <Tag key={m}>{m}</Tag>) : "—"),
          },
          {
            title: t("providers.breaker"),
            dataIndex: "breaker",
            render: (b: string | null) => (b ? <Tag color={b === "closed" ? "green" : b === "open" ? "red" : "orange"}>{b}</Tag> : "—"),
          },
          {
            key: "test",
            render: (_, p) => {
              const result = results[p.name];
              return (
                <span>
                  <Button size="small" icon={<ApiOutlined />} loading={result === "testing"} onClick={() => void test(p.name)} data-testid={`provider-test-${p.name}`}>
                    {t("providers.test")}
                  </Button>{" "}
                  {result && result !== "testing" && (
                    <Tooltip title={result.detail}>
                      <Tag color={result.ok ? "green" : "red"} data-testid={`provider-result-${p.name}`}>
                        {result.ok ? t("providers.ok", { ms: Math.round(result.latency_ms ?? 0) }) : t("providers.failed")}
                      </Tag>
                    </Tooltip>
                  )}
                </span>
              );
            },
          },
        ]}
      />
      {manage && <ProviderConfigs onChanged={() => void providers.reload()} />}
    </div>
  );
}
