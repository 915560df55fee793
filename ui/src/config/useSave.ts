// Submit a configuration form: the API's 422 field errors go on the fields, the rest (a failed
// provider test, a read-only name) into an alert above the form.
import type { FormInstance } from "antd";
import { useState } from "react";
import { problemOf, type Problem } from "../api/problem";
import { formFieldErrors } from "../components/formErrors";

export function useSave<V>(form: FormInstance<V>, fields: readonly string[]) {
  const [problem, setProblem] = useState<Problem | null>(null);
  const [saving, setSaving] = useState(false);
  const run = async (action: () => Promise<unknown>): Promise<boolean> => {
    setSaving(true);
    setProblem(null);
    try {
      await action();
      return true;
    } catch (failure) {
      const p = problemOf(failure);
      const onFields = formFieldErrors(p, (first) => fields.includes(first));
      if (onFields.length > 0) form.setFields(onFields as never);
      if (onFields.length === 0 || onFields.length < (p.errors ?? []).length) setProblem(p);
      return false;
    } finally {
      setSaving(false);
    }
  };
  return { problem, saving, run, clear: () => setProblem(null) };
}
