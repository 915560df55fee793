import { describe, expect, it } from "vitest";
import { timelineBars } from "../src/monitor/timeline";

describe("task timeline", () => {
  it("lays tasks on one axis from the first start to the last end", () => {
    const at = (s: number) => 1_700_000_000 + s;
    const { bars, span } = timelineBars(
      [
        { id: "2", node_id: "b", status: "completed", attempt: 2, created_at: at(5), updated_at: at(10) },
        { id: "1", node_id: "a", status: "completed", attempt: 1, created_at: at(0), updated_at: at(5) },
      ],
      at(60) * 1000,
    );
    expect(span).toBe(10);
    expect(bars.map((b) => [b.label, b.left, b.width, b.seconds])).toEqual([
      ["a", 0, 50, 5],
      ["b #2", 50, 50, 5],
    ]);
  });

  it("runs active tasks up to now", () => {
    const { bars } = timelineBars(
      [{ id: "1", node_id: "a", status: "running", attempt: 1, created_at: 1_700_000_000, updated_at: 1_700_000_000 }],
      1_700_000_004_000,
    );
    expect(bars[0]!.seconds).toBe(4);
  });
});
