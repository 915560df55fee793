// The two node components of the canvas; everything they show comes from the node registry.
import { Badge, Tooltip } from "antd";
import { Handle, NodeResizer, Position, type NodeProps } from "@xyflow/react";
import type { CSSProperties } from "react";
import { STATUS_COLORS } from "../monitor/status";
import { useCanvasInfo } from "./canvasContext";
import { TARGET_HANDLE, type FlowNode } from "./convert";
import { KindIcon } from "./icons";
import { stepHeight } from "./layout";

const PORT_TOP = 52;
const PORT_STEP = 22;

function useNodeLook(id: string, node: FlowNode["data"]) {
  const { registry, statuses, problems, readOnly } = useCanvasInfo();
  const { type, config } = node.spec;
  const kind = registry.get(type);
  const status = statuses?.[id];
  const issues = problems?.byNode[id] ?? [];
  const border = issues.length > 0 ? "#e03131" : status ? STATUS_COLORS[status] : kind.color;
  const name = typeof node.spec["name"] === "string" && node.spec["name"] ? node.spec["name"] : id;
  return { registry, kind, status, issues, border, name, readOnly, ports: registry.ports(type, config) };
}

function Header({ id, data }: { id: string; data: FlowNode["data"] }) {
  const { kind, status, issues, name } = useNodeLook(id, data);
  return (
    <div className="cz-node-head">
      <div className="cz-node-title" style={{ color: kind.color }}>
        <KindIcon name={kind.icon} />
        <span className="cz-node-name" title={id}>
          {name}
        </span>
        {issues.length > 0 && (
          <Tooltip title={issues.map((p) => p.message).join("\n")} overlayStyle={{ whiteSpace: "pre-line" }}>
            <Badge count={issues.length} size="small" data-testid={`node-problems-${id}`} />
          </Tooltip>
        )}
      </div>
      <div className="cz-node-sub">
        <span className="cz-node-type">{kind.name}</span>
        {status && (
          <span className="cz-node-status" data-testid={`node-status-${id}`} style={{ background: STATUS_COLORS[status] }}>
            {status}
          </span>
        )}
      </div>
    </div>
  );
}

function Ports({ id, ports, hasInput }: { id: string; ports: string[]; hasInput: boolean }) {
  return (
    <>
      {hasInput && (
        <Handle type="target" position={Position.Left} id={TARGET_HANDLE} data-testid={`handle-${id}-in`} style={{ top: PORT_TOP - 8 }} />
      )}
      {ports.map((port, i) => (
        <div key={port} className="cz-port" style={{ top: PORT_TOP + i * PORT_STEP - 8 }}>
          <span className={port === "error" ? "cz-port-label cz-port-error" : "cz-port-label"}>{port}</span>
          <Handle
            type="source"
            position={Position.Right}
            id={port}
            data-testid={`handle-${id}-${port}`}
            className={port === "error" ? "cz-handle-error" : undefined}
          />
        </div>
      ))}
    </>
  );
}

export function StepNode({ id, data, selected }: NodeProps<FlowNode>) {
  const { registry, border, ports, status } = useNodeLook(id, data);
  const style: CSSProperties = { borderColor: border, minHeight: stepHeight(ports.length) };
  return (
    <div
      className={`cz-node${selected ? " cz-selected" : ""}`}
      style={style}
      data-testid={`node-${id}`}
      data-status={status ?? ""}
    >
      <Header id={id} data={data} />
      <Ports id={id} ports={ports} hasInput={registry.hasInput(data.spec.type)} />
    </div>
  );
}

export function ContainerNode({ id, data, selected }: NodeProps<FlowNode>) {
  const { registry, border, ports, status, readOnly } = useNodeLook(id, data);
  return (
    <div
      className={`cz-node cz-container${selected ? " cz-selected" : ""}`}
      style={{ borderColor: border }}
      data-testid={`node-${id}`}
      data-status={status ?? ""}
    >
      {!readOnly && <NodeResizer isVisible={selected === true} minWidth={240} minHeight={140} />}
      <Header id={id} data={data} />
      <Ports id={id} ports={ports} hasInput={registry.hasInput(data.spec.type)} />
    </div>
  );
}

export const NODE_TYPES = { step: StepNode, container: ContainerNode };
