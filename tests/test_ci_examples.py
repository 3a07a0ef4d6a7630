"""The CI recipes in examples/ci/ run: every mimctl line they hold, in order, on a real repo."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES

CI = EXAMPLES / "ci"


def mimctl_lines(script: str) -> list[list[str]]:
    """The mimctl command lines of a shell script, as argument lists (redirects dropped)."""
    found = []
    for line in script.splitlines():
        words = shlex.split(line.strip(), comments=True)
        if words[:1] == ["mimctl"]:
            found.append(words[1:words.index(">")] if ">" in words else words[1:])
    return found


def run_lines(workflow: dict, job: str) -> list[list[str]]:
    return [line for step in workflow["jobs"][job]["steps"] if "run" in step
            for line in mimctl_lines(step["run"])]


def test_the_github_workflow_validates_plans_comments_and_applies_a_saved_plan(
        mimctl, database_url, engine, tmp_path, monkeypatch) -> None:
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    plan_job, apply_job = run_lines(workflow, "plan"), run_lines(workflow, "apply")
    assert plan_job == [["validate", "specs", "--strict"],
                        ["reconcile", "--plan", "specs", "--format", "markdown", "--out",
                         "plan.json"]]
    assert apply_job == [["reconcile", "--plan", "specs", "--out", "plan.json"],
                         ["reconcile", "--apply", "plan.json"]]
    assert set(workflow["env"]) >= {"MIM_DATABASE_URL", "MIM_MASTER_KEY", "MIM_SEAL_KEY"}

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "quickstart", repo / "specs")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MIM_DATABASE_URL", database_url)
    results = [mimctl(*line) for line in plan_job]
    assert [r.exit_code for r in results] == [0, 2]  # valid; changes to make
    assert "**Requests**" in results[1].output  # the markdown the comment posts
    (repo / "plan.json").unlink()  # the merge job plans afresh
    planned, applied = (mimctl(*line) for line in apply_job)
    assert (planned.exit_code, applied.exit_code) == (2, 0), applied.output
    assert json.loads((repo / "plan.json").read_text())["summary"]["create"] > 0
    again = mimctl("reconcile", "--plan", "specs")
    assert again.exit_code == 0 and "No changes" in again.output


def test_the_pre_commit_hook_runs_mimctl_validate(mimctl, tmp_path, monkeypatch) -> None:
    config = yaml.safe_load((CI / "pre-commit-config.yaml").read_text())
    [hook] = config["repos"][0]["hooks"]
    words = shlex.split(hook["entry"])
    assert words[0] == "mimctl" and hook["pass_filenames"] is False
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "quickstart", repo / "specs")
    monkeypatch.chdir(repo)
    assert mimctl(*words[1:]).exit_code == 0
    (repo / "specs" / "people.yaml").write_text("apiVersion: mim/v1\nkind: Person\n")
    assert mimctl(*words[1:]).exit_code == 1  # a broken spec stops the commit
    assert Path(repo / "specs").is_dir()
