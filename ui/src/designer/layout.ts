// Positions for nodes the definition's `layout` does not place: a layered left-to-right layout
// (layer = longest path from a source), containers sized around their body.
import type { Position } from "./definition";

export const NODE_WIDTH = 220;
export const CONTAINER_HEADER = 56;
export const CONTAINER_PAD = 24;
const GAP_X = 80;
const GAP_Y = 40;
const MIN_CONTAINER = { width: 320, height: 180 };

export interface Size {
  width: number;
  height: number;
}

/** The rendered height of a step node with `ports` output handles (kept in step with StepNode). */
export function stepHeight(ports: number): number {
  return Math.max(76, 52 + ports * 22);
}

/** The size of a container around children placed at `placed` with sizes `sizes`. */
export function containerSize(placed: { position: Position; size: Size }[]): Size {
  let width = MIN_CONTAINER.width;
  let height = MIN_CONTAINER.height;
  for (const { position, size } of placed) {
    width = Math.max(width, position.x + size.width + CONTAINER_PAD);
    height = Math.max(height, position.y + size.height + CONTAINER_PAD);
  }
  return { width, height };
}

function layers(ids: readonly string[], links: readonly [string, string][]): Map<string, number> {
  const depth = new Map(ids.map((id) => [id, 0]));
  const incoming = new Map(ids.map((id) => [id, 0]));
  const next = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const [from, to] of links) {
    if (!depth.has(from) || !depth.has(to) || from === to) continue;
    next.get(from)?.push(to);
    incoming.set(to, (incoming.get(to) ?? 0) + 1);
  }
  const queue = ids.filter((id) => incoming.get(id) === 0);
  while (queue.length > 0) {
    const id = queue.shift() as string;
    for (const to of next.get(id) ?? []) {
      depth.set(to, Math.max(depth.get(to) ?? 0, (depth.get(id) ?? 0) + 1));
      const left = (incoming.get(to) ?? 1) - 1;
      incoming.set(to, left);
      if (left === 0) queue.push(to);
    }
  }
  return depth; // nodes on a cycle keep the depth reached so far
}

/**
 * Place `ids` (in document order) in layers; `fixed` positions are kept, and only the others are
 * computed. `origin` offsets the whole graph (a container's body starts under its header).
 */
export function autoLayout(
  ids: readonly string[],
  links: readonly [string, string][],
  sizes: ReadonlyMap<string, Size>,
  fixed: Readonly<Record<string, Position>>,
  origin: Position,
): Map<string, Position> {
  const depth = layers(ids, links);
  const columns: string[][] = [];
  for (const id of ids) {
    const d = depth.get(id) ?? 0;
    (columns[d] ??= []).push(id);
  }
  const placed = new Map<string, Position>();
  let x = origin.x;
  for (const column of columns) {
    if (!column) continue;
    let y = origin.y;
    let width = NODE_WIDTH;
    for (const id of column) {
      const size = sizes.get(id) ?? { width: NODE_WIDTH, height: stepHeight(1) };
      placed.set(id, fixed[id] ?? { x, y });
      y += size.height + GAP_Y;
      width = Math.max(width, size.width);
    }
    x += width + GAP_X;
  }
  return placed;
}
