"""The deploy path as users run it: `npx cdk ...` from a clone, on the project's venv, pinned tools."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from infra.paths import REPO_ROOT


def test_the_cdk_cli_and_the_simulator_are_pinned_exactly():
    package = json.loads((REPO_ROOT / "package.json").read_text())
    pins = package["devDependencies"]
    assert set(pins) == {"aws-cdk", "@cloud-copilot/iam-simulate"}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in pins.values()), pins  # no ^ or ~ ranges
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == pins["aws-cdk"]


def test_cdk_json_runs_the_app_on_the_projects_venv():
    app = json.loads((REPO_ROOT / "cdk.json").read_text())["app"]
    assert app == "make --no-print-directory --silent cdk-app"  # not `python3`, which is whatever is on PATH
    dry = subprocess.run(["make", "-n", "--no-print-directory", "cdk-app"], cwd=REPO_ROOT, capture_output=True,  # noqa: S603,S607
                         text=True, check=True).stdout  # fmt: skip
    assert ".venv/bin/python -m infra.app" in dry


def test_the_jsii_banner_is_silenced_with_the_variable_jsii_reads():
    # jsii checks <PREFIX>_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION (a list of Node majors);
    # the old DEPRECATED_NODE_VERSION variable no longer silences anything
    for path in ("Makefile", ".ci/run", ".ci/system-packages", "infra/__init__.py", "infra/app.py"):
        text = (REPO_ROOT / path).read_text()
        assert "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION" not in text, path
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" in (REPO_ROOT / "Makefile").read_text()


def test_make_test_installs_missing_system_packages_with_the_ci_script():
    dry = subprocess.run(["make", "-n", "--no-print-directory", "test"], cwd=REPO_ROOT, capture_output=True,  # noqa: S603,S607
                         text=True, check=True).stdout  # fmt: skip
    assert dry.splitlines()[0] == ".ci/system-packages"
    assert ".ci/system-packages" in (REPO_ROOT / ".ci" / "run").read_text()


def test_prod_without_an_oncall_address_is_one_line_and_exit_2(tmp_path):
    # what `npx cdk synth -c env=prod` runs: the CLI passes the context as CDK_CONTEXT_JSON
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"env": "prod"}), "CDK_OUTDIR": str(tmp_path),
           "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "infra.app"], cwd=REPO_ROOT, env=env, capture_output=True,  # noqa: S603
                         text=True, check=False, timeout=300)  # fmt: skip
    assert run.returncode == 2, run.stderr
    err = run.stderr.strip()
    assert err.startswith("finsentry infra: env=prod needs an on-call address") and "\n" not in err, err
