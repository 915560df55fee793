// The legal hold of one instance, on its detail page: shown to readers, set and released by
// the workspace's admins. A held instance is never deleted by retention.
import { LockOutlined, UnlockOutlined } from "@ant-design/icons";
import { App, Button, Form, Input, Modal, Popconfirm, Tag, Tooltip, type ButtonProps } from "antd";
import { useState } from "react";
import { unwrap } from "../api/client";
import { attempt } from "../components/feedback";
import { formatTime } from "../components/time";
import { useLoad } from "../components/useLoad";
import { useT } from "../i18n";
import { api, useSession } from "../session/store";
import { subjectLabel, useSubjectNames } from "./subjects";

export function LegalHoldControl({ instanceId }: { instanceId: string }) {
  const t = useT();
  const { message } = App.useApp();
  const manage = useSession((s) => s.me?.permissions.includes("manage") ?? false);
  const path = { params: { path: { instance_id: instanceId } } };
  const hold = useLoad(() => unwrap(api.GET("/api/v1/processes/instances/{instance_id}/legal-hold", path)), [instanceId]);
  const [open, setOpen] = useState(false);
  const names = useSubjectNames();
  const [form] = Form.useForm<{ reason?: string }>();

  const set = async () => {
    const { reason } = await form.validateFields();
    const body = { reason: reason?.trim() ? reason.trim() : null };
    const done = await attempt(message, () => unwrap(api.PUT("/api/v1/processes/instances/{instance_id}/legal-hold", { ...path, body })), t("hold.set"));
    if (done) {
      hold.set(done);
      setOpen(false);
      form.resetFields();
    }
  };
  const release = () =>
    attempt(message, () => unwrap(api.DELETE("/api/v1/processes/instances/{instance_id}/legal-hold", path)), t("hold.released")).then(hold.reload);

  if (!hold.data) return null; // a failed read hides the control; the page still works
  const held = hold.data.held;
  return (
    <>
      {held && (
        <Tooltip title={t("hold.tooltip", { reason: hold.data.reason ?? "—", by: subjectLabel(hold.data.set_by, names), at: formatTime(hold.data.set_at) })}>
          <Tag color="volcano" icon={<LockOutlined />} data-testid="legal-hold-tag">{t("hold.tag")}</Tag>
        </Tooltip>
      )}
      {manage && held && (
        <Popconfirm title={t("hold.releaseConfirm")} onConfirm={release}>
          <Button icon={<UnlockOutlined />} data-testid="legal-hold-release">{t("hold.release")}</Button>
        </Popconfirm>
      )}
      {manage && !held && (
        <Button icon={<LockOutlined />} onClick={() => setOpen(true)} data-testid="legal-hold-add">{t("hold.add")}</Button>
      )}
      <Modal open={open} title={t("hold.add")} onOk={() => void set()} onCancel={() => setOpen(false)} okText={t("hold.confirm")} cancelText={t("common.cancel")} okButtonProps={{ "data-testid": "legal-hold-confirm" } as ButtonProps}>
        <Form form={form} layout="vertical">
          <Form.Item name="reason" label={t("hold.reason")} rules={[{ max: 500 }]}>
            <Input.TextArea rows={3} maxLength={500} showCount data-testid="legal-hold-reason" />
          </Form.Item>
        </Form>
      </Modal>
    </>
  );
}
