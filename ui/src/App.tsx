import { App as AntApp, ConfigProvider, Result, Spin } from "antd";
import enUS from "antd/locale/en_US";
import zhCN from "antd/locale/zh_CN";
import dayjs from "dayjs";
import "dayjs/locale/zh-cn";
import { lazy, Suspense, useEffect } from "react";
import { BrowserRouter, Navigate, Route, Routes } from "react-router-dom";
import { Shell } from "./components/Shell";
import { useT } from "./i18n";
import LoginPage from "./pages/LoginPage";
import { useSession } from "./session/store";

const ProcessesPage = lazy(() => import("./pages/ProcessesPage"));
const DesignerPage = lazy(() => import("./designer/DesignerPage"));
const InstancesPage = lazy(() => import("./monitor/InstancesPage"));
const InstancePage = lazy(() => import("./monitor/InstancePage"));
const ApprovalsPage = lazy(() => import("./monitor/ApprovalsPage"));
const DashboardPage = lazy(() => import("./monitor/DashboardPage"));
const AgentsPage = lazy(() => import("./agents/AgentsPage"));
const SystemPage = lazy(() => import("./system/SystemPage"));

function NotFound() {
  const t = useT();
  return <Result status="404" title="404" subTitle={t("common.notFound")} />;
}

export function App() {
  const lang = useSession((s) => s.lang);
  useEffect(() => {
    dayjs.locale(lang === "zh-CN" ? "zh-cn" : "en");
    document.documentElement.lang = lang;
  }, [lang]);
  return (
    <ConfigProvider locale={lang === "zh-CN" ? zhCN : enUS} theme={{ token: { colorPrimary: "#3b5bdb", borderRadius: 6 } }}>
      <AntApp>
        <BrowserRouter>
          <Suspense fallback={<Spin style={{ display: "block", margin: 120 }} />}>
            <Routes>
              <Route path="/login" element={<LoginPage />} />
              <Route element={<Shell />}>
                <Route index element={<Navigate to="/processes" replace />} />
                <Route path="/processes" element={<ProcessesPage />} />
                <Route path="/processes/new" element={<DesignerPage />} />
                <Route path="/processes/:processId" element={<DesignerPage />} />
                <Route path="/instances" element={<InstancesPage />} />
                <Route path="/instances/:instanceId" element={<InstancePage />} />
                <Route path="/approvals" element={<ApprovalsPage />} />
                <Route path="/dashboard" element={<DashboardPage />} />
                <Route path="/agents" element={<AgentsPage />} />
                <Route path="/system" element={<SystemPage />} />
                <Route path="*" element={<NotFound />} />
              </Route>
            </Routes>
          </Suspense>
        </BrowserRouter>
      </AntApp>
    </ConfigProvider>
  );
}
