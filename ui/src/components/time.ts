// The API's times are seconds since the epoch.
export function formatTime(seconds: number | null | undefined): string {
  return seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000).toLocaleString();
}

export function formatClock(seconds: number | null | undefined): string {
  return seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000).toLocaleTimeString();
}
