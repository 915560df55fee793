// A process version's status as a coloured, translated tag: the processes list and the versions drawer.
import { Tag } from "antd";
import type { DefinitionStatus } from "../api/status";
import { useT } from "../i18n";

export const VERSION_COLORS: Record<DefinitionStatus, string> = { draft: "blue", published: "green", archived: "default" };

export function VersionStatusTag({ status }: { status: DefinitionStatus }) {
  const t = useT();
  return <Tag color={VERSION_COLORS[status]}>{t(`versionStatus.${status}`)}</Tag>;
}
