import { createContext, useContext } from "react";
import type { TaskStatus } from "../api/status";
import type { PlacedProblems } from "./problems";
import { createNodeRegistry, type NodeRegistry } from "./registry";

/** What node components read besides their own data: kinds, live statuses, problems. */
export interface CanvasInfo {
  registry: NodeRegistry;
  statuses?: Record<string, TaskStatus>;
  problems?: PlacedProblems;
  readOnly?: boolean;
}

export const CanvasContext = createContext<CanvasInfo>({ registry: createNodeRegistry([]) });

export function useCanvasInfo(): CanvasInfo {
  return useContext(CanvasContext);
}
