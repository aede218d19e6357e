// Drives the Vercel emulator with Vercel's official client, @vercel/sdk, whose response schemas
// are generated from Vercel's OpenAPI: a response the real API would not give fails validation.
// Usage: node vercel_sdk.mjs <sdk dir> <base url> <token> <project> <edge config id> <deployment id>
// Prints one JSON line per call: {"call", "ok", "error"?}.
import { pathToFileURL } from "node:url";
import path from "node:path";

const [sdkDir, serverURL, bearerToken, project, edgeConfigId, deploymentId] = process.argv.slice(2);
const { Vercel } = await import(pathToFileURL(path.join(sdkDir, "node_modules/@vercel/sdk/esm/index.js")).href);
const vercel = new Vercel({ bearerToken, serverURL });
let envId = "";

const calls = [
  ["projects.getProject", () => vercel.projects.getProject({ idOrName: project })],
  ["deployments.getDeployments", () => vercel.deployments.getDeployments({ projectId: project, target: "production", state: "READY", limit: 20 })],
  ["deployments.getDeployment", () => vercel.deployments.getDeployment({ idOrUrl: deploymentId })],
  ["edgeConfig.getEdgeConfigItems", () => vercel.globalConfig.getEdgeConfigItems({ edgeConfigId })],
  ["edgeConfig.getEdgeConfigItem", () => vercel.globalConfig.getEdgeConfigItem({ edgeConfigId, edgeConfigItemKey: "new_checkout" })],
  ["projects.requestRollback", () => vercel.projects.requestRollback({ projectId: project, deploymentId })],
  ["projects.getProject (with lastAliasRequest)", () => vercel.projects.getProject({ idOrName: project })],
  ["projects.filterProjectEnvs", async () => {
    const listed = await vercel.projects.filterProjectEnvs({ idOrName: project });
    envId = listed.envs.find((e) => e.key === "API_URL").id;
  }],
  ["projects.getProjectEnv", () => vercel.projects.getProjectEnv({ idOrName: project, id: envId })],
  ["projects.editProjectEnv", () => vercel.projects.editProjectEnv({ idOrName: project, id: envId, requestBody: { value: "https://api.demo-shop.test/v1" } })],
  ["deployments.createDeployment (redeploy)", () => vercel.deployments.createDeployment({ requestBody: { name: "demo-shop", deploymentId, target: "production", meta: { rollbotTag: "rollbot-fidelity" } } })],
  ["projects.createProjectEnv", () => vercel.projects.createProjectEnv({ idOrName: project, requestBody: { key: "RESTORED_KEY", value: "restored", type: "encrypted", target: ["production"] } })],
];
let failed = 0;
for (const [name, call] of calls) {
  try {
    await call();
    console.log(JSON.stringify({ call: name, ok: true }));
  } catch (error) {
    failed += 1;
    const detail = error?.rawValue !== undefined || error?.cause ? String(error.cause ?? error).slice(0, 3000) : String(error).slice(0, 3000);
    console.log(JSON.stringify({ call: name, ok: false, error: `${error?.name}: ${detail}` }));
  }
}
process.exit(failed ? 1 : 0);
