// Start an instance with inputs entered in a form generated from the process's `inputs` schema.
import { Alert, Modal, Typography, type ButtonProps } from "antd";
import { useMemo, useState } from "react";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { InstanceSummary } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { schemaToFields } from "../forms/fields";
import { SchemaForm } from "../forms/SchemaForm";
import type { FieldError } from "../forms/values";
import { useT } from "../i18n";
import { api } from "../session/store";
import type { Json, JsonObject } from "./definition";

interface Props {
  open: boolean;
  processId: string;
  version?: number;
  inputsSchema: Json | undefined;
  onClose: () => void;
  onStarted: (instance: InstanceSummary) => void;
}

export function RunModal({ open, processId, version, inputsSchema, onClose, onStarted }: Props) {
  const t = useT();
  const fields = useMemo(() => schemaToFields(inputsSchema), [inputsSchema]);
  const [inputs, setInputs] = useState<JsonObject>({});
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  const start = async () => {
    setBusy(true);
    setProblem(null);
    try {
      const body = version === undefined ? { process_id: processId, inputs } : { process_id: processId, version, inputs };
      const instance = await unwrap(api.POST("/api/v1/processes/instances", { body }));
      onStarted(instance);
      onClose();
    } catch (failure) {
      setProblem(problemOf(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      open={open}
      title={t("run.title", { id: processId, version: version ?? "latest" })}
      okText={t("run.start")}
      cancelText={t("common.cancel")}
      onOk={start}
      onCancel={onClose}
      confirmLoading={busy}
      okButtonProps={{ disabled: errors.length > 0, "data-testid": "run-start" } as ButtonProps}
      destroyOnClose
      data-testid="run-modal"
    >
      <ProblemAlert problem={problem} />
      {fields.length === 0 ? (
        <Typography.Paragraph type="secondary">{t("run.noInputs")}</Typography.Paragraph>
      ) : (
        <SchemaForm
          testId="input"
          fields={fields}
          value={inputs}
          onChange={(config, fieldErrors) => {
            setInputs(config);
            setErrors(fieldErrors);
          }}
        />
      )}
      {errors.length > 0 && <Alert type="warning" message={errors.map((e) => `${e.path}: ${e.message}`).join("; ")} />}
    </Modal>
  );
}
