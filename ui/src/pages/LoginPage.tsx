// Sign in with a username and password, then pick a workspace when there is more than one.
import { App, Button, Card, Form, Input, Select, Space, Typography } from "antd";
import { useState } from "react";
import { Navigate, useLocation, useNavigate } from "react-router-dom";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import type { Me } from "../api/types";
import { ProblemAlert } from "../components/ProblemAlert";
import { LANGUAGES, useT } from "../i18n";
import { api, useSession } from "../session/store";

export default function LoginPage() {
  const t = useT();
  const navigate = useNavigate();
  const location = useLocation();
  App.useApp();
  const { lang, setLang, accessToken, me } = useSession();
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);
  const [picking, setPicking] = useState<Me | null>(null);
  const next = (location.state as { from?: string } | null)?.from ?? "/processes";

  if (accessToken && me && !picking) return <Navigate to={next} replace />;

  const login = async (values: { username: string; password: string }) => {
    setBusy(true);
    setProblem(null);
    try {
      const tokens = await unwrap(api.POST("/api/v1/auth/login", { body: values }));
      useSession.getState().signIn(tokens);
      const who = await unwrap(api.GET("/api/v1/me"));
      useSession.getState().setMe(who);
      if (who.workspaces.length > 1) setPicking(who);
      else navigate(next, { replace: true });
    } catch (failure) {
      useSession.getState().signOut();
      setProblem(problemOf(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="cz-login">
      <Card style={{ width: 380 }} data-testid="login-card">
        <Space style={{ width: "100%", justifyContent: "space-between" }}>
          <Typography.Title level={3} style={{ margin: 0 }}>
            Cadenza
          </Typography.Title>
          <Select size="small" value={lang} onChange={setLang} options={LANGUAGES} data-testid="login-language" style={{ width: 110 }} />
        </Space>
        <Typography.Paragraph type="secondary">{t("login.subtitle")}</Typography.Paragraph>
        <ProblemAlert problem={problem} />
        {picking ? (
          <div data-testid="workspace-picker">
            <Typography.Paragraph>{t("login.pickWorkspace")}</Typography.Paragraph>
            <Select
              style={{ width: "100%", marginBottom: 16 }}
              defaultValue={useSession.getState().workspace ?? undefined}
              onChange={(id: string) => useSession.getState().setWorkspace(id)}
              options={picking.workspaces.map((w) => ({ value: w.id, label: `${w.name} (${w.role})` }))}
              data-testid="login-workspace"
            />
            <Button type="primary" block onClick={() => navigate(next, { replace: true })} data-testid="login-continue">
              {t("login.continue")}
            </Button>
          </div>
        ) : (
          <Form layout="vertical" onFinish={login} requiredMark={false}>
            <Form.Item name="username" label={t("login.username")} rules={[{ required: true, message: t("login.required") }]}>
              <Input autoComplete="username" autoFocus data-testid="login-username" />
            </Form.Item>
            <Form.Item name="password" label={t("login.password")} rules={[{ required: true, message: t("login.required") }]}>
              <Input.Password autoComplete="current-password" data-testid="login-password" />
            </Form.Item>
            <Button type="primary" htmlType="submit" block loading={busy} data-testid="login-submit">
              {t("login.submit")}
            </Button>
          </Form>
        )}
      </Card>
    </div>
  );
}
