/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const outDir = fileURLToPath(new URL("../src/cadenza/web/dist", import.meta.url));
// `npm run dev` proxies the API to a local `cadenza serve` (CADENZA_API, default port 8000).
const api = process.env.CADENZA_API ?? "http://127.0.0.1:8000";

// The API docs page (/docs, served by the API: interfaces/api/docs.py) loads Swagger UI from
// the server itself, never a CDN: the files of the pinned npm package swagger-ui-dist are
// copied into the build as they are, with its licence (ui/public/api-docs/init.js starts it).
const SWAGGER_UI = new URL("./node_modules/swagger-ui-dist/", import.meta.url);
const SWAGGER_UI_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"];

function apiDocs(): Plugin {
  return {
    name: "cadenza-api-docs",
    apply: "build",
    generateBundle() {
      for (const name of SWAGGER_UI_FILES) {
        const source = readFileSync(fileURLToPath(new URL(name, SWAGGER_UI)));
        this.emitFile({ type: "asset", fileName: `api-docs/${name}`, source });
      }
    },
  };
}

export default defineConfig({
  plugins: [react(), apiDocs()],
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
