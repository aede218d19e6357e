"""Emulator fidelity: the Vercel emulator's answers to every call Rollbot makes are accepted by
Vercel's official client, `@vercel/sdk` from npm, whose response schemas are generated from
Vercel's OpenAPI. Runs when `node` and `npm` are installed (the SDK is fetched once into
build/); skips, saying why, otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.vercel_emulator import DEMO_EDGE_CONFIG, VercelEmulator

SDK_VERSION = "1.28.35"
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "fidelity" / "vercel_sdk.mjs"
SDK_DIR = ROOT / "build" / f"vercel-sdk-{SDK_VERSION}-py{sys.version_info[0]}.{sys.version_info[1]}"


def _sdk() -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: the @vercel/sdk fidelity check needs them")
    if not (SDK_DIR / "node_modules" / "@vercel" / "sdk" / "package.json").exists():
        SDK_DIR.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(SDK_DIR),
                                 f"@vercel/sdk@{SDK_VERSION}"], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            pytest.skip(f"npm could not install @vercel/sdk@{SDK_VERSION}: {result.stderr.strip()[-300:]}")
    return SDK_DIR


def test_the_official_vercel_client_accepts_every_answer_rollbot_relies_on() -> None:
    sdk = _sdk()
    with VercelEmulator("fidelity-token") as vercel:
        vercel.seed_demo("prj_demo")
        earlier = vercel.deployments("prj_demo")[1]["uid"]
        result = subprocess.run(["node", str(SCRIPT), str(sdk), vercel.url, "fidelity-token", "prj_demo",
                                 DEMO_EDGE_CONFIG, earlier], capture_output=True, text=True, timeout=120)
    calls = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert calls, result.stderr[-2000:]
    failed = {c["call"]: c["error"][:1500] for c in calls if not c["ok"]}
    assert not failed, json.dumps(failed, indent=1)
    assert [c["call"] for c in calls] == ["projects.getProject", "deployments.getDeployments",
                                          "deployments.getDeployment", "edgeConfig.getEdgeConfigItems",
                                          "edgeConfig.getEdgeConfigItem", "projects.requestRollback",
                                          "projects.getProject (with lastAliasRequest)", "projects.filterProjectEnvs",
                                          "projects.getProjectEnv", "projects.editProjectEnv",
                                          "deployments.createDeployment (redeploy)", "projects.createProjectEnv"]
