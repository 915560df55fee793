// The frame of every signed-in page: navigation, workspace and language pickers, the user menu.
import {
  ApartmentOutlined, AuditOutlined, DashboardOutlined, LogoutOutlined, RobotOutlined,
  SettingOutlined, UnorderedListOutlined, UserOutlined,
} from "@ant-design/icons";
import { Button, Dropdown, Layout, Menu, Result, Select, Space, Spin, Typography } from "antd";
import { useEffect, useState } from "react";
import { Link, Navigate, Outlet, useLocation, useNavigate } from "react-router-dom";
import { unwrap } from "../api/client";
import { problemOf, type Problem } from "../api/problem";
import { LANGUAGES, useT } from "../i18n";
import { api, useSession } from "../session/store";
import { ProblemAlert } from "./ProblemAlert";

const NAV = [
  { key: "/processes", icon: <ApartmentOutlined />, label: "nav.processes" },
  { key: "/instances", icon: <UnorderedListOutlined />, label: "nav.instances" },
  { key: "/approvals", icon: <AuditOutlined />, label: "nav.approvals" },
  { key: "/dashboard", icon: <DashboardOutlined />, label: "nav.dashboard" },
  { key: "/agents", icon: <RobotOutlined />, label: "nav.agents" },
  { key: "/system", icon: <SettingOutlined />, label: "nav.system" },
] as const;

export function Shell() {
  const t = useT();
  const location = useLocation();
  const navigate = useNavigate();
  const { accessToken, me, workspace, lang, setLang, setWorkspace, signOut } = useSession();
  const [problem, setProblem] = useState<Problem | null>(null);

  useEffect(() => {
    if (!accessToken || me) return;
    unwrap(api.GET("/api/v1/me"))
      .then((who) => useSession.getState().setMe(who))
      .catch((failure: unknown) => setProblem(problemOf(failure)));
  }, [accessToken, me]);

  if (!accessToken) return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  if (problem) return <div style={{ padding: 48 }}><ProblemAlert problem={problem} onRetry={() => { setProblem(null); signOut(); }} /></div>;
  if (!me) return <Spin style={{ display: "block", margin: 120 }} />;

  const selected = NAV.find((n) => location.pathname.startsWith(n.key))?.key ?? "/processes";
  return (
    <Layout style={{ minHeight: "100vh" }}>
      <Layout.Sider breakpoint="lg" collapsible theme="light" width={200}>
        <div className="cz-brand">Cadenza</div>
        <Menu
          mode="inline"
          selectedKeys={[selected]}
          items={NAV.map((n) => ({ key: n.key, icon: n.icon, label: <Link to={n.key} data-testid={`nav-${n.key.slice(1)}`}>{t(n.label)}</Link> }))}
        />
      </Layout.Sider>
      <Layout>
        <Layout.Header className="cz-header">
          <Space>
            <Typography.Text type="secondary">{t("header.workspace")}</Typography.Text>
            <Select
              style={{ minWidth: 160 }}
              value={workspace ?? undefined}
              onChange={(id: string) => setWorkspace(id)}
              options={me.workspaces.map((w) => ({ value: w.id, label: `${w.name} · ${w.role}` }))}
              notFoundContent={t("header.noWorkspace")}
              data-testid="workspace-select"
            />
          </Space>
          <Space>
            <Select value={lang} onChange={setLang} options={LANGUAGES} style={{ width: 110 }} data-testid="language-select" />
            <Dropdown
              menu={{
                items: [{ key: "logout", icon: <LogoutOutlined />, label: <span data-testid="logout">{t("header.logout")}</span> }],
                onClick: () => {
                  signOut();
                  navigate("/login");
                },
              }}
            >
              <Button icon={<UserOutlined />} data-testid="user-menu">
                {me.user?.username ?? me.role}
              </Button>
            </Dropdown>
          </Space>
        </Layout.Header>
        <Layout.Content className="cz-content">
          {me.workspaces.length === 0 ? (
            <Result status="403" title={t("header.noWorkspace")} subTitle={t("header.noWorkspaceHint")} />
          ) : (
            <Outlet key={workspace ?? ""} />
          )}
        </Layout.Content>
      </Layout>
    </Layout>
  );
}
