"""Fast, safe YAML: libyaml composes nodes with positions, a small converter turns them into data.

Why not `yaml.safe_load` or ruamel's round trip: plans read tens of thousands of documents, and
composing with libyaml then converting nodes ourselves is the cheapest path that still knows
where every node is (shared/research/performance-floors.md). Converting ourselves is also where
the hostile-input rules live:

- YAML 1.2 core schema: `yes`, `no`, `on`, `off` and dates stay strings (`c: NO` is Norway);
- only the core tags (str, int, float, bool, null, map, seq); any other tag is refused;
- duplicate keys in a mapping are reported, with both lines;
- alias expansion is bounded (a "billion laughs" file fails in milliseconds), nesting too;
- merge keys (`<<: *defaults`) work, with the mapping's own keys taking precedence.

The dumper uses the same resolver, so what it writes always reads back as the same data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

try:  # libyaml; the pure-Python parser is the slow fallback
    from yaml.cyaml import CParser as _Parser
    from yaml.cyaml import CSafeDumper as _BaseDumper

    LIBYAML = True
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    LIBYAML = False
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)

    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]

TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (TAG + t for t in ("str", "int", "float", "bool", "null"))
MAP, SEQ, MERGE = TAG + "map", TAG + "seq", TAG + "merge"

MAX_ALIAS_EXPANSION = 100_000  # nodes an alias may copy, per file
MAX_DEPTH = 64

_CORE_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    (NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), "-+.0123456789"),
    (MERGE, re.compile(r"^<<$"), "<"),
]


def _install_core_schema(cls: type[BaseResolver]) -> None:
    cls.yaml_implicit_resolvers = {}
    for tag, pattern, first in _CORE_RESOLVERS:
        cls.add_implicit_resolver(tag, pattern, list(first))
    # The empty plain scalar is null.
    cls.yaml_implicit_resolvers.setdefault("", []).append((NULL, _CORE_RESOLVERS[0][1]))


class _Composer(_Parser, BaseResolver):  # type: ignore[misc, valid-type]
    """libyaml's parser and composer with the YAML 1.2 core schema resolver."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        BaseResolver.__init__(self)


_install_core_schema(_Composer)


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Writes block-style YAML whose scalars resolve back to the same values under our schema."""


_install_core_schema(_Dumper)
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")  # plain or literal style would fold them


def _represent_str(dumper: yaml.BaseDumper, value: str) -> yaml.ScalarNode:
    if any(mark in value for mark in _UNICODE_BREAKS):
        style: str | None = '"'
    elif "\n" in value and value.strip() == value.rstrip("\n"):
        style = "|"
    else:
        style = None
    return dumper.represent_scalar(STR, value, style=style)


_Dumper.add_representer(str, _represent_str)


class YamlSyntaxError(Exception):
    """The text is not YAML; the file stops here (line and column are 1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


@dataclass(frozen=True, slots=True)
class NodeProblem:
    """A problem in one document's nodes (1-based position)."""

    message: str
    line: int
    column: int
    fatal: bool = False


class _Abort(Exception):
    pass


def compose_documents(text: str) -> Iterator[Node]:
    """Yield the root node of each document; raise YamlSyntaxError where the text breaks."""
    composer = _Composer(text)
    try:
        while composer.check_node():
            yield composer.get_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = error.problem or str(error)
        if error.context:
            problem = f"{problem} ({error.context})"
        raise YamlSyntaxError(f"YAML syntax error: {problem}", line, column) from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(f"YAML error: {error}", 1, 1) from None
    finally:
        composer.dispose()


def is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL and node.value in ("", "~", "null")


class NodeConverter:
    """Turns one file's nodes into plain data, collecting problems instead of stopping early.

    The alias budget spans the file, since anchors live as long as their file.
    """

    def __init__(self) -> None:
        self.problems: list[NodeProblem] = []
        self._reported: set[tuple[int, int]] = set()  # an aliased node is converted again
        self._sizes: dict[int, int] = {}
        self._expanded = 0

    def convert(self, node: Node) -> Any:
        """Data of one document; on a fatal problem, returns None (the problem is recorded)."""
        self._sizes = {}  # anchors do not cross documents, and node ids may be reused
        try:
            value, _ = self._value(node, 0)
            return value
        except _Abort:
            return None

    def _fail(self, node: Node, message: str) -> _Abort:
        self.problems.append(NodeProblem(message, *_position(node), fatal=True))
        return _Abort()

    def _value(self, node: Node, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise self._fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        key = id(node)
        size = self._sizes.get(key)
        if size is not None and not isinstance(node, ScalarNode):
            # A repeated node is an alias: bound what copying it costs.
            self._expanded += size
            if self._expanded > MAX_ALIAS_EXPANSION:
                raise self._fail(node, f"aliases expand to more than {MAX_ALIAS_EXPANSION} "
                                       "nodes; refusing a possible 'billion laughs' file")
        if isinstance(node, ScalarNode):
            return self._scalar(node), 1
        if isinstance(node, SequenceNode):
            if node.tag != SEQ:
                raise self._fail(node, _tag_message(node.tag))
            items, size = [], 1
            for item in node.value:
                value, item_size = self._value(item, depth + 1)
                items.append(value)
                size += item_size
        elif isinstance(node, MappingNode):
            if node.tag != MAP:
                raise self._fail(node, _tag_message(node.tag))
            items, size = self._mapping(node, depth)
        else:  # pragma: no cover - the composer makes only these three
            raise self._fail(node, f"unsupported YAML node {type(node).__name__}")
        self._sizes[key] = size
        return items, size

    def _mapping(self, node: MappingNode, depth: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        merged: list[dict[str, Any]] = []
        size = 1
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == MERGE:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise self._fail(source, "a merge key (<<) takes a mapping or a list "
                                                 "of mappings")
                    value, value_size = self._value(source, depth + 1)
                    merged.append(value)
                    size += value_size
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (STR, INT, FLOAT,
                                                                            BOOL, NULL):
                raise self._fail(key_node, "mapping keys must be plain scalars")
            key = key_node.value
            if key in first_seen:
                line, _ = _position(first_seen[key])
                where = _position(key_node)
                if where not in self._reported:
                    self._reported.add(where)
                    self.problems.append(NodeProblem(
                        f"duplicate key {key!r} (first at line {line}); YAML keeps only one, "
                        "remove the other", *where))
                continue
            first_seen[key] = key_node
            value, value_size = self._value(value_node, depth + 1)
            result[key] = value
            size += value_size + 1
        for source in merged:  # earlier merge sources win over later ones, own keys over all
            for key, value in source.items():
                result.setdefault(key, value)
        return result, size

    def _scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == STR:
            return text
        if tag == NULL:
            return None
        if tag == BOOL:
            folded = text.lower()
            if folded in ("true", "false"):
                return folded == "true"
        elif tag == INT:
            try:
                return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
            except ValueError:
                pass
        elif tag == FLOAT:
            folded = text.lower().lstrip("+")
            if folded in (".inf", "-.inf", ".nan"):
                return {".inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}[folded]
            try:
                return float(text)
            except ValueError:
                pass
        elif tag == MERGE:
            return text
        else:
            raise self._fail(node, _tag_message(tag))
        raise self._fail(node, f"{text!r} is not a valid {tag.removeprefix(TAG)}")


def _tag_message(tag: str) -> str:
    return (f"tag {tag} is not allowed; only YAML's core tags are "
            "(str, int, float, bool, null, map, seq)")


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def node_position(node: Node) -> tuple[int, int]:
    """1-based (line, column) where a node starts."""
    return _position(node)


def dump_documents(documents: list[Any]) -> str:
    """YAML text of several documents, separated by `---`, that loads back as the same data."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                         default_flow_style=False, explicit_start=True, width=100)


def dump_models(models: Iterable[BaseModel]) -> str:
    """YAML text of spec documents, defaults left out, in the order given."""
    return dump_documents([model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                           for model in models])
