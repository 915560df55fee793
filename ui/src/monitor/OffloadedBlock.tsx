// A payload kept in the blob store: its size and the preview the API sends in its place.
import { CloudServerOutlined } from "@ant-design/icons";
import { Tag, Tooltip, Typography } from "antd";
import { useT } from "../i18n";
import { formatBytes, type BlobMarker } from "./payload";

export function OffloadedBlock({ marker, testId }: { marker: BlobMarker; testId?: string }) {
  const t = useT();
  return (
    <div className="cz-offloaded" data-testid={testId} data-offloaded="true">
      <Tooltip title={t("payload.offloadedHelp")}>
        <Tag icon={<CloudServerOutlined />} color="geekblue" data-testid={testId ? `${testId}-offloaded` : undefined}>
          {t("payload.offloaded", { size: formatBytes(marker.size) })}
        </Tag>
      </Tooltip>
      <pre className="cz-json">{marker.preview}…</pre>
      <Typography.Text type="secondary" className="cz-mono">sha256 {marker.sha256.slice(0, 16)}</Typography.Text>
    </div>
  );
}
