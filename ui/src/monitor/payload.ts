// Payloads offloaded to the blob store come back from the API as a marker in their place:
// {"$cadenza": "blob", "ref", "sha256", "size", "preview"} (docs/payloads.md); a text slot
// (an error) holds "$cadenza:" + the marker's JSON. The console shows the preview and size.
export interface BlobMarker {
  ref: string;
  sha256: string;
  size: number;
  preview: string;
}

const TEXT_PREFIX = "$cadenza:";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The blob marker a slot holds, or null for an ordinary value. */
export function blobMarker(value: unknown): BlobMarker | null {
  let candidate = value;
  if (typeof value === "string" && value.startsWith(TEXT_PREFIX)) {
    try {
      candidate = JSON.parse(value.slice(TEXT_PREFIX.length)) as unknown;
    } catch {
      return null;
    }
  }
  if (!isRecord(candidate) || candidate["$cadenza"] !== "blob") return null;
  const { ref, sha256, size, preview } = candidate;
  if (typeof ref !== "string" || typeof size !== "number") return null;
  return { ref, sha256: typeof sha256 === "string" ? sha256 : "", size, preview: typeof preview === "string" ? preview : "" };
}

/** 183502 → "179.2 KB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
