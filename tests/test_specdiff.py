"""`mimctl diff` over a five-commit history of a spec repository (snapshots)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

MAIL = """\
apiVersion: mim/v1
kind: ExternalSystem
metadata:
  name: Mail
spec:
  listenerType: Smtp
  host: smtp.example.com
  username: mim
  password: {sealed}
  fromAddress: mim@example.com
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def edit(repo: Path, file: str, old: str, new: str) -> None:
    path = repo / "specs" / file
    text = path.read_text()
    assert old in text, (file, old)
    path.write_text(text.replace(old, new, 1))


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """Five commits: the quickstart; a reorder and a rename; nested changes and weaker
    settings; a secret change; wider roles. Then an uncommitted person."""
    repo = tmp_path_factory.mktemp("history")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")
    shutil.copytree(EXAMPLES / "quickstart", repo / "specs")
    (repo / "specs" / "mail.yaml").write_text(MAIL.format(sealed="enc:v1:k1:Zmlyc3Q="))
    (repo / "README.md").write_text("not a spec\n")
    commit(repo, "1: the quickstart and a mail relay")

    edit(repo, "roles.yaml", "    - Request ID\n    - Request Replacement ID\n",
         "    - Request Replacement ID\n    - Request ID\n")  # reordered: no change
    edit(repo, "pki.yaml", "  name: default\nspec:\n  default: true",
         "  name: everyone\nspec:\n  default: true")  # renamed, same content
    commit(repo, "2: reorder workflows, rename the DN policy")

    edit(repo, "profiles.yaml", "    canUnlock: [Helpdesk]",
         "    canUnlock: [Helpdesk, PasswordUser]")
    edit(repo, "profiles.yaml", "  description: Signing certificate for Android and iOS.",
         "  description: Signing certificate for phones.")
    edit(repo, "settings.yaml", "  certificates:\n",
         "  certificates:\n    certificateRecoveryPasswordComplexity: 04-08N\n")
    edit(repo, "settings.yaml", "  contentSigning:\n", "  requests:\n    maxCodeAttempts: 10\n"
         "  auth:\n    allowUnsafeHttp: true\n  contentSigning:\n")
    commit(repo, "3: nested profile changes, weaker settings")

    (repo / "specs" / "mail.yaml").write_text(MAIL.format(sealed="enc:v1:k1:c2Vjb25k"))
    commit(repo, "4: a new mail password")

    edit(repo, "people.yaml", "  roles: [PasswordUser]", "  roles: [PasswordUser, Helpdesk]")
    edit(repo, "roles.yaml", "  scope: Self\n", "  scope: All\n")
    commit(repo, "5: wider roles")

    (repo / "specs" / "carol.yaml").write_text(
        "apiVersion: mim/v1\nkind: Person\nmetadata:\n  name: carol\nspec:\n"
        "  fullName: Carol\n  roles: [PasswordUser]\n")
    return repo


def run(mimctl, repo: Path, *args: str):
    return mimctl("diff", *args, "specs", "--repo", repo)


@pytest.mark.parametrize("output_format", ["text", "json", "markdown"])
def test_the_whole_history(mimctl, history, snapshot, output_format) -> None:
    result = run(mimctl, history, "HEAD~4", "HEAD", "--format", output_format)
    assert result.exit_code == 2, result.output
    assert result.output == snapshot


@pytest.mark.parametrize("step", [4, 3, 2, 1])
def test_each_commit(mimctl, history, snapshot, step) -> None:
    result = run(mimctl, history, f"HEAD~{step}", f"HEAD~{step - 1}")
    assert result.output == snapshot


def test_the_working_tree_against_the_last_commit(mimctl, history) -> None:
    result = mimctl("diff", "HEAD", "--repo", history)  # PATH defaults to the whole repo
    assert result.exit_code == 2
    assert result.output.splitlines()[2:] == ["+ Person/carol"]


def test_security_view(mimctl, history, snapshot) -> None:
    widening = run(mimctl, history, "HEAD~4", "HEAD", "--security")
    assert widening.exit_code == 2 and widening.output == snapshot
    nothing = run(mimctl, history, "HEAD~4", "HEAD~3", "--security")
    assert nothing.exit_code == 0 and nothing.output.startswith("Nothing widens access")


def test_reordering_renames_and_secrets(mimctl, history) -> None:
    reorder = run(mimctl, history, "HEAD~4", "HEAD~3").output
    assert "Role/Helpdesk" not in reorder  # only reordered: no change
    assert "= DnPolicy/everyone  (renamed from DnPolicy/default, content unchanged)" in reorder
    secret = run(mimctl, history, "HEAD~2", "HEAD~1").output
    assert "~ spec.password: (sensitive value changed)" in secret
    assert "c2Vjb25k" not in secret and "Zmlyc3Q=" not in secret


def test_a_bad_revision_is_an_error(mimctl, history) -> None:
    result = run(mimctl, history, "no-such-rev", "HEAD")
    assert result.exit_code == 1 and "git ls-tree" in result.output
