// Generates src/api/schema.d.ts from openapi.json (the API's own schema) with openapi-typescript.
// `--check` regenerates into a temp file instead and fails when the committed file is stale.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TARGET = "src/api/schema.d.ts";
// Fields with a default are optional in requests: do not turn defaults into required fields.
const FLAGS = ["--default-non-nullable", "false"];

function generate(out) {
  execFileSync(process.execPath, ["node_modules/openapi-typescript/bin/cli.js", "openapi.json", "-o", out, ...FLAGS], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

if (!process.argv.includes("--check")) {
  generate(TARGET);
  console.log(`wrote ${TARGET}`);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), "cadenza-api-"));
try {
  const fresh = join(dir, "schema.d.ts");
  generate(fresh);
  let current = null;
  try {
    current = readFileSync(TARGET, "utf8");
  } catch {
    // reported below
  }
  if (current !== readFileSync(fresh, "utf8")) {
    console.error(`${TARGET} is stale against openapi.json: run \`npm run gen:api\` and commit both`);
    process.exit(1);
  }
  console.log(`${TARGET} matches openapi.json`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
