// Node types from the backend catalog, grouped; drag one onto the canvas (or click to add it).
import { Tooltip, Typography } from "antd";
import type { DragEvent } from "react";
import { useT } from "../i18n";
import { DRAG_TYPE } from "./FlowCanvas";
import { KindIcon } from "./icons";
import type { NodeRegistry } from "./registry";

interface Props {
  registry: NodeRegistry;
  onAdd: (type: string) => void;
}

export function Palette({ registry, onAdd }: Props) {
  const t = useT();
  const start = (event: DragEvent, type: string) => {
    event.dataTransfer.setData(DRAG_TYPE, type);
    event.dataTransfer.effectAllowed = "copy";
  };
  const groups = registry.palette();
  return (
    <div className="cz-palette" data-testid="palette">
      {groups.length === 0 && <Typography.Text type="secondary">{t("designer.paletteEmpty")}</Typography.Text>}
      {groups.map((group) => (
        <div key={group.category}>
          <div className="cz-palette-title">{t(`category.${group.category}`)}</div>
          {group.kinds.map((kind) => (
            <Tooltip key={kind.name} title={kind.info.description} placement="right" mouseEnterDelay={0.6}>
              <div
                className="cz-palette-item"
                draggable
                onDragStart={(e) => start(e, kind.name)}
                onDoubleClick={() => onAdd(kind.name)}
                data-testid={`palette-${kind.name}`}
                style={{ borderLeftColor: kind.color }}
              >
                <span style={{ color: kind.color }}>
                  <KindIcon name={kind.icon} />
                </span>
                <span>{kind.name}</span>
              </div>
            </Tooltip>
          ))}
        </div>
      ))}
      <Typography.Paragraph type="secondary" className="cz-palette-hint">
        {t("designer.paletteHint")}
      </Typography.Paragraph>
    </div>
  );
}
