import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import type { NodeTypeInfo } from "../src/api/types";
import type { Definition } from "../src/designer/definition";
import { createNodeRegistry } from "../src/designer/registry";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The backend catalog, exported from cadenza.domain.nodetypes (see tests/fixtures/README.md). */
export const catalog = JSON.parse(
  readFileSync(here("./fixtures/node-types.json"), "utf8"),
) as NodeTypeInfo[];

export const registry = createNodeRegistry(catalog);

/** Every example definition of the repository, by file name. */
export function examples(): [string, Definition][] {
  const dir = here("../../examples/");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => [f, parse(readFileSync(dir + f, "utf8")) as Definition]);
}
