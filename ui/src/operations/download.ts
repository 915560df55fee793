// Save a response body as a file. The body was fetched by the authenticated client, so no
// token ever goes into a URL (a bare link would carry it into history and server logs).
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** `audit-2026-12-02T12-30-00.jsonl`: sortable, no characters a file system refuses. */
export function exportName(prefix: string, now: Date, ext: string): string {
  return `${prefix}-${now.toISOString().slice(0, 19).replace(/:/g, "-")}.${ext}`;
}
