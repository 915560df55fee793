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
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom", "zustand"],
          antd: ["antd", "@ant-design/icons"],
          flow: ["@xyflow/react"],
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
