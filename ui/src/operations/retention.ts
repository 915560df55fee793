// Retention ages: the API speaks seconds, people speak days (or hours, minutes).
export const UNITS = { days: 86_400, hours: 3_600, minutes: 60 } as const;
export type Unit = keyof typeof UNITS;

export interface Age {
  amount: number;
  unit: Unit;
}

/** Seconds → the largest unit it is a whole number of (else minutes, with decimals). */
export function toAge(seconds: number): Age {
  for (const unit of ["days", "hours"] as const) {
    if (seconds >= UNITS[unit] && seconds % UNITS[unit] === 0) return { amount: seconds / UNITS[unit], unit };
  }
  return { amount: Math.round((seconds / 60) * 1000) / 1000, unit: "minutes" };
}

export function toSeconds(age: Age): number {
  return Math.round(age.amount * UNITS[age.unit]);
}

/** An age field of the form: empty amount = keep for ever (null). */
export function ageOrNull(amount: number | null | undefined, unit: Unit): number | null {
  return amount === null || amount === undefined || Number.isNaN(amount) ? null : toSeconds({ amount, unit });
}
