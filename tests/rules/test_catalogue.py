"""The catalogue as a whole: a clean base, clean examples, and docs that match the registry."""

from __future__ import annotations

import pytest

from reconciler.rules import REGISTRY, catalogue_markdown, catalogue_text
from reconciler.validate import validate
from tests.conftest import EXAMPLES, ROOT, SPEC_EXAMPLES
from tests.rules.base import BASE, problems


def test_the_base_configuration_is_clean(tmp_path) -> None:
    assert [str(p) for p in problems(tmp_path, BASE)] == []


@pytest.mark.parametrize("example", [path.name for path in SPEC_EXAMPLES])
def test_the_examples_pass_the_whole_catalogue(example) -> None:
    assert [str(p) for p in validate(EXAMPLES / example).problems] == []


def test_docs_rules_md_is_generated_from_the_catalogue() -> None:
    written = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert written == catalogue_markdown(), (
        "docs/rules.md is out of date: run `mimctl validate --list-rules --format markdown "
        "> docs/rules.md`")


def test_list_rules_prints_every_rule(mimctl) -> None:
    result = mimctl("validate", "--list-rules")
    assert result.exit_code == 0
    assert result.output == catalogue_text()
    listed = [line.split()[0] for line in result.output.splitlines()]
    assert listed == sorted(REGISTRY)
    markdown = mimctl("validate", "--list-rules", "--format", "markdown")
    assert markdown.output == catalogue_markdown()


def test_every_rule_has_a_title_a_section_and_a_severity() -> None:
    for entry in REGISTRY.values():
        assert entry.title and entry.section[0].isdigit(), entry
        assert entry.severity in ("error", "warning"), entry
