// The canvas: React Flow over the store's nodes and edges (or a read-only graph of a run).
import {
  Background,
  Controls,
  MiniMap,
  Panel,
  ReactFlow,
  useReactFlow,
  type Connection,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import { useMemo, type DragEvent } from "react";
import { useT } from "../i18n";
import { STATUS_COLORS } from "../monitor/status";
import { useCanvasInfo } from "./canvasContext";
import type { FlowEdge, FlowNode } from "./convert";
import { NODE_TYPES } from "./nodes";

export const DRAG_TYPE = "application/x-cadenza-node-type";

export interface FlowCanvasProps {
  nodes: FlowNode[];
  edges: FlowEdge[];
  onNodesChange?: (changes: NodeChange<FlowNode>[]) => void;
  onEdgesChange?: (changes: EdgeChange<FlowEdge>[]) => void;
  onConnect?: (connection: Connection) => void;
  isValidConnection?: (connection: Connection | FlowEdge) => boolean;
  onSelect?: (id: string | null) => void;
  /** A palette item dropped at a point of the flow (flow coordinates). */
  onDropType?: (type: string, point: { x: number; y: number }) => void;
  /** Fit the view once the first nodes are measured (read-only graphs; the designer fits itself
   * when it loads a graph, so that dropping the first node does not zoom the canvas). */
  fitOnInit?: boolean;
}

const emptyHint = <EmptyHint />;

function EmptyHint() {
  const t = useT();
  return <span>{t("designer.canvasEmpty")}</span>;
}

export function FlowCanvas(props: FlowCanvasProps) {
  const { registry, problems, statuses, readOnly } = useCanvasInfo();
  const flow = useReactFlow<FlowNode, FlowEdge>();

  const edges = useMemo(
    () =>
      props.edges.map((edge) => {
        const port = edge.sourceHandle ?? "out";
        const broken = (problems?.byEdge[edge.id]?.length ?? 0) > 0;
        const done = statuses?.[edge.source] === "completed" && statuses?.[edge.target] !== undefined;
        const color = broken ? "#e03131" : port === "error" ? "#e8590c" : done ? STATUS_COLORS.completed : undefined;
        return {
          ...edge,
          label: port === "out" ? undefined : port,
          animated: statuses?.[edge.target] === "running",
          style: color ? { stroke: color, strokeWidth: 2 } : undefined,
        };
      }),
    [props.edges, problems, statuses],
  );

  function onDragOver(event: DragEvent) {
    if (readOnly || !event.dataTransfer.types.includes(DRAG_TYPE)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  }

  function onDrop(event: DragEvent) {
    const type = event.dataTransfer.getData(DRAG_TYPE);
    if (readOnly || !type || !props.onDropType) return;
    event.preventDefault();
    props.onDropType(type, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
  }

  return (
    <div className="cz-canvas" data-testid="canvas" onDragOver={onDragOver} onDrop={onDrop}>
      <ReactFlow<FlowNode, FlowEdge>
        nodes={props.nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        onNodesChange={props.onNodesChange}
        onEdgesChange={props.onEdgesChange}
        onConnect={props.onConnect}
        isValidConnection={props.isValidConnection}
        onNodeClick={(_, node) => props.onSelect?.(node.id)}
        onPaneClick={() => props.onSelect?.(null)}
        nodesDraggable={!readOnly}
        nodesConnectable={!readOnly}
        elementsSelectable
        deleteKeyCode={readOnly ? null : ["Delete", "Backspace"]}
        defaultEdgeOptions={{ type: "smoothstep" }}
        fitView={props.fitOnInit ?? false}
        fitViewOptions={{ padding: 0.15, maxZoom: 1 }}
        minZoom={0.2}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={16} />
        {props.nodes.length === 0 && !readOnly && (
          <Panel position="top-center" className="cz-canvas-empty" data-testid="canvas-empty">
            {emptyHint}
          </Panel>
        )}
        <Controls showInteractive={false} />
        {!readOnly && <MiniMap pannable zoomable nodeColor={(n) => registry.get((n as FlowNode).data.spec.type).color} />}
      </ReactFlow>
    </div>
  );
}
