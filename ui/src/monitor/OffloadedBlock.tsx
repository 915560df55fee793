// A payload kept in the blob store: its size and the preview the API sends in its place, and
// the whole value loaded on demand from the instance's payload route (one request per value).
import { CloudDownloadOutlined, CloudServerOutlined } from "@ant-design/icons";
import { Button, Tag, Tooltip, Typography } from "antd";
import { createContext, useContext, useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import { ProblemAlert } from "../components/ProblemAlert";
import { useT } from "../i18n";
import { api } from "../session/store";
import { formatBytes, type BlobMarker } from "./payload";

/** The instance whose payloads the blocks below show (the route is per instance). */
export const PayloadInstance = createContext<string | null>(null);

export function OffloadedBlock({ marker, testId }: { marker: BlobMarker; testId?: string }) {
  const t = useT();
  const instanceId = useContext(PayloadInstance);
  const [full, setFull] = useState<{ value: unknown } | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [loading, setLoading] = useState(false);
  const load = async () => {
    if (!instanceId) return;
    setLoading(true);
    setProblem(null);
    try {
      const path = { instance_id: instanceId, sha256: marker.sha256 };
      const value: unknown = await unwrap(api.GET("/api/v1/processes/instances/{instance_id}/payloads/{sha256}", { params: { path } }));
      setFull({ value });
    } catch (failure) {
      setProblem(problemOf(failure));
    } finally {
      setLoading(false);
    }
  };
  const sub = (name: string) => (testId ? `${testId}-${name}` : undefined);
  return (
    <div className="cz-offloaded" data-testid={testId} data-offloaded="true">
      <Tooltip title={t("payload.offloadedHelp")}>
        <Tag icon={<CloudServerOutlined />} color="geekblue" data-testid={sub("offloaded")}>
          {t("payload.offloaded", { size: formatBytes(marker.size) })}
        </Tag>
      </Tooltip>
      {instanceId && !full && (
        <Button size="small" icon={<CloudDownloadOutlined />} loading={loading} onClick={() => void load()} data-testid={sub("load")}>
          {t("payload.load")}
        </Button>
      )}
      <ProblemAlert problem={problem} />
      {full ? (
        <pre className="cz-json cz-json-full" data-testid={sub("full")}>
          {typeof full.value === "string" ? full.value : JSON.stringify(full.value, null, 2)}
        </pre>
      ) : (
        <pre className="cz-json">{marker.preview}…</pre>
      )}
      <Typography.Text type="secondary" className="cz-mono">sha256 {marker.sha256.slice(0, 16)}</Typography.Text>
    </div>
  );
}
