/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const outDir = fileURLToPath(new URL("../src/cadenza/web/dist", import.meta.url));
// `npm run dev` proxies the API to a local `cadenza serve` (CADENZA_API, default port 8000).
const api = process.env.CADENZA_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    chunkSizeWarningLimit: 1600,
    rollupOptions: {
      output: {
        // Vendor code in a few long-lived chunks; echarts stays in the lazy dashboard chunk.
        manualChunks(id: string): string | undefined {
          if (!id.includes("node_modules")) return undefined;
          if (/node_modules\/(react|react-dom|scheduler|react-router|react-router-dom|@remix-run|zustand)\//.test(id)) return "react";
          if (/node_modules\/(@xyflow|d3-[a-z]+|classcat)\//.test(id)) return "flow";
          if (/node_modules\/(antd|@ant-design|rc-[a-z-]+|@rc-component|dayjs)\//.test(id)) return "antd";
          return undefined;
        },
      },
    },
  },
  server: { proxy: { "/api": { target: api, changeOrigin: false } } },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
