// Fails when src/api/schema.d.ts is stale: regenerates it from openapi.json into a temp file and
// compares. Run `npm run gen:api` to refresh it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const committed = "src/api/schema.d.ts";
const dir = mkdtempSync(join(tmpdir(), "cadenza-api-"));
const fresh = join(dir, "schema.d.ts");
try {
  execFileSync(
    process.execPath,
    ["node_modules/openapi-typescript/bin/cli.js", "openapi.json", "-o", fresh],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  let current = "";
  try {
    current = readFileSync(committed, "utf8");
  } catch {
    console.error(`${committed} is missing: run \`npm run gen:api\``);
    process.exit(1);
  }
  if (readFileSync(fresh, "utf8") !== current) {
    console.error(`${committed} is stale against openapi.json: run \`npm run gen:api\` and commit it`);
    process.exit(1);
  }
  console.log(`${committed} matches openapi.json`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
