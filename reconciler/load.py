"""Reads a configuration repository: files -> documents, each knowing its file, line and column.

Loading never stops at the first mistake: every file is read, every document checked against its
kind's model, and every finding becomes a `Problem` at the exact node. Positions of individual
fields are only looked up when something is wrong (`Locator` re-reads just that file), which keeps
the common, clean path fast.
"""

from __future__ import annotations

import difflib
import gc
import os
import re
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Problem, SpecPathError
from reconciler.yamlnodes import (
    NodeConverter,
    YamlSyntaxError,
    compose_documents,
    is_empty,
    node_position,
)
from specs import API_VERSION, KINDS, Document
from specs.base import DisplayNameMetadata

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_SUGGESTION_CHOICES = 2_000
_RULE_PREFIX = re.compile(r"^\[(MIM\d{3})\] ")
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a document comes from: its file, its position among the file's documents, its line."""

    file: str
    path: Path
    index: int
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class SpecDocument:
    """A valid document and where it was written."""

    source: Source
    model: Document

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def name(self) -> str:
        return self.model.metadata.name


@dataclass(slots=True)
class LoadResult:
    """Everything read from a repository: the valid documents and every problem found."""

    documents: list[SpecDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def discover(root: Path) -> list[Path]:
    """The YAML files of a repository in a stable order; hidden files and folders are skipped."""
    if root.is_file():
        return [root]
    if not root.exists():
        raise SpecPathError(str(root), "no such file or directory")
    if not root.is_dir():
        raise SpecPathError(str(root), "not a file or a directory")
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(Path(folder, name) for name in sorted(files)
                     if name.endswith(YAML_SUFFIXES) and not name.startswith("."))
    return found


def display_path(path: Path) -> str:
    """The path as a user should see it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def read_text(path: Path, file: str) -> tuple[str | None, Problem | None]:
    """A file's text, or the problem that keeps it from being read (size, encoding, access)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, Problem(file, 1, 1, f"file is {size:,} bytes, over the limit of "
                                 f"{MAX_FILE_BYTES:,}; split it into several files", code="yaml")
        data = path.read_bytes()
    except OSError as error:
        return None, Problem(file, 1, 1, f"cannot read file: {error.strerror}", code="yaml")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        line_start = data.rfind(b"\n", 0, error.start) + 1
        column = len(data[line_start:error.start].decode("utf-8", errors="replace")) + 1
        byte = data[error.start]
        return None, Problem(file, line, column, f"file is not UTF-8 (byte 0x{byte:02x}); "
                             "save it as UTF-8", code="yaml")
    return text.removeprefix("\ufeff"), None


@dataclass(slots=True)
class _RawDocument:
    source: Source
    body: Any


class Locator:
    """Finds the line and column of a field path, re-reading a file only when asked."""

    def __init__(self) -> None:
        self._roots: dict[Path, list[Node]] = {}

    def _root(self, source: Source) -> Node | None:
        roots = self._roots.get(source.path)
        if roots is None:
            text, _ = read_text(source.path, source.file)
            roots = []
            if text is not None:
                try:
                    roots.extend(compose_documents(text))
                except YamlSyntaxError:
                    pass  # documents before the break are kept; later ones never loaded
            self._roots[source.path] = roots
        return roots[source.index] if source.index < len(roots) else None

    def find(self, source: Source, path: FieldPath, at_key: bool = False) -> tuple[int, int, FieldPath]:
        """(line, column, path) of the node at `path`, or of its nearest existing ancestor.

        With `at_key`, the position is that of the mapping key, not its value.
        """
        node = self._root(source)
        if node is None:
            return source.line, source.column, path
        key_node: Node | None = None
        clean: list[str | int] = []
        for position, element in enumerate(path):
            hit = _child(node, element)
            if hit is None:
                clean.extend(path[position:])
                key_node = None
                break
            key_node, node = hit
            clean.append(element)
        target = key_node if at_key and key_node is not None else node
        line, column = node_position(target)
        return line, column, tuple(clean)


def _child(node: Node, element: str | int) -> tuple[Node | None, Node] | None:
    if isinstance(node, SequenceNode) and isinstance(element, int):
        return (None, node.value[element]) if 0 <= element < len(node.value) else None
    if not isinstance(node, MappingNode):
        return None
    merged: list[Node] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode):
            if key_node.value == str(element) and key_node.tag.endswith(("str", "int", "float",
                                                                          "bool", "null")):
                return key_node, value_node
            if key_node.tag.endswith(":merge"):
                merged.extend(value_node.value if isinstance(value_node, SequenceNode)
                              else [value_node])
    for source in merged:
        hit = _child(source, element)
        if hit is not None:
            return hit
    return None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a batch that only builds up live objects.

    Loading keeps every document alive, so each automatic collection walks an ever larger heap
    for nothing (documents form no cycles): about a quarter of a large plan's time, growing
    faster than the workload. Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(path: str | Path) -> LoadResult:
    """Read every document under `path` (a folder tree or one file) and check it against its kind."""
    with paused_gc():
        return _load(Path(path))


def _load(root: Path) -> LoadResult:
    result = LoadResult()
    raw_documents: list[_RawDocument] = []
    for file_path in discover(root):
        file = display_path(file_path)
        result.files.append(file)
        raw_documents.extend(_read_file(file_path, file, result.problems))
    locator = Locator()
    for raw in raw_documents:
        document = _build(raw, locator, result.problems)
        if document is not None:
            result.documents.append(document)
    result.problems.extend(_duplicates(result.documents, locator))
    return result


def _read_file(path: Path, file: str, problems: list[Problem]) -> list[_RawDocument]:
    text, problem = read_text(path, file)
    if problem is not None:
        problems.append(problem)
        return []
    documents: list[_RawDocument] = []
    converter = NodeConverter()
    reported = 0
    try:
        for index, node in enumerate(compose_documents(text or "")):
            if is_empty(node):
                continue
            body = converter.convert(node)
            kind, name = _identity(body)
            for found in converter.problems[reported:]:
                problems.append(Problem(file, found.line, found.column, found.message,
                                        kind, name, code="yaml"))
            reported = len(converter.problems)
            if body is not None:
                line, column = node_position(node)
                documents.append(_RawDocument(Source(file, path, index, line, column), body))
    except YamlSyntaxError as error:
        problems.append(Problem(file, error.line, error.column, error.message, code="yaml"))
    return documents


def _identity(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    kind = body.get("kind")
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return (kind if isinstance(kind, str) else None), (name if isinstance(name, str) else None)


def _build(raw: _RawDocument, locator: Locator, problems: list[Problem]) -> SpecDocument | None:
    source, body = raw.source, raw.body
    kind, name = _identity(body)

    def report(path: FieldPath, message: str, at_key: bool = False, code: str = "schema") -> None:
        line, column, clean = locator.find(source, path, at_key)
        problems.append(Problem(source.file, line, column, message, kind, name, clean, code=code))

    if not isinstance(body, dict):
        report((), "a document must be a mapping with apiVersion, kind, metadata and spec")
        return None
    version = body.get("apiVersion")
    if version != API_VERSION:
        report(("apiVersion",), f"required key 'apiVersion' is missing (apiVersion: {API_VERSION})"
               if version is None else
               f"apiVersion {version!r} is not supported; this mimctl reads {API_VERSION}")
        return None
    model = KINDS.get(kind) if kind is not None else None
    if model is None:
        known = ", ".join(KINDS)
        if "kind" not in body:
            report(("kind",), f"required key 'kind' is missing (one of {known})")
        else:
            hint = suggest(str(body["kind"]), KINDS) or f"; known kinds: {known}"
            report(("kind",), f"unknown kind {body['kind']!r}{hint}")
        return None
    try:
        document = model.model_validate(body)
    except ValidationError as error:
        for path, message, at_key, code in _explain(error, model):
            report(path, message, at_key, code)
        return None
    return SpecDocument(source, document)


def _explain(error: ValidationError,
             model: type[BaseModel]) -> list[tuple[FieldPath, str, bool, str]]:
    """Turn pydantic's errors into (path, message, point-at-key, code) for users."""
    explained = []
    for item in error.errors(include_url=False):
        loc: FieldPath = tuple(item["loc"])  # with union tags, to look fields up in the models
        path = _without_union_tags(model, loc)  # as the user wrote it
        kind, message, context = item["type"], item["msg"], item.get("ctx") or {}
        at_key = False
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            discriminator, tags = _discriminator(model, loc)
            path = (*path, discriminator)
            message = (f"required key {discriminator!r} is missing (one of {tags})"
                       if kind == "union_tag_not_found" else f"must be one of {tags}")
        elif kind == "extra_forbidden":
            key = str(path[-1])
            allowed = _allowed_keys(model, loc[:-1])
            message = f"unknown key {key!r}{suggest(key, allowed)}"
            at_key = True
        elif kind == "missing":
            message = f"required key {path[-1]!r} is missing"
        elif kind == "literal_error":
            message = f"must be one of {context.get('expected')}"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind == "string_pattern_mismatch" and path[-2:] == ("metadata", "name"):
            message = f"{item['input']!r} is not a valid name: {_name_rule(model)}"
        elif kind == "string_pattern_mismatch":
            description = _field_description(model, loc)
            message = f"{item['input']!r} does not match {context.get('pattern')}" + (
                f" ({description})" if description else "")
        else:
            message = message[:1].lower() + message[1:]
        code = "schema"
        rule = _RULE_PREFIX.match(message)
        if rule:  # a check the rule catalogue lists (specs.base.violation)
            code, message = rule.group(1), message[rule.end():]
        explained.append((path, message, at_key, code))
    return explained


def _name_rule(model: type[BaseModel]) -> str:
    metadata = _unwrap(model.model_fields["metadata"].annotation)
    if issubclass(metadata, DisplayNameMetadata):
        return "up to 128 characters, no '/', no control characters, no leading or trailing spaces"
    return "use lowercase letters, digits and '-', starting and ending with a letter or digit " \
        "(like mobile-standard)"


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """'; did you mean X?' for the closest of `choices`, or an empty string.

    Beyond MAX_SUGGESTION_CHOICES names (tens of thousands of people) difflib would cost
    seconds per unknown name, so there is no suggestion.
    """
    candidates = choices if isinstance(choices, (set, frozenset, dict, list)) else list(choices)
    if len(candidates) > MAX_SUGGESTION_CHOICES:
        return ""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _field_at(model: type[BaseModel], path: FieldPath) -> tuple[Any, Any]:
    """(annotation, FieldInfo or None) found by following an error path through the models."""
    annotation: Any = model
    info = None
    for element in path:
        annotation = _unwrap(annotation)
        if isinstance(element, int):
            args = get_args(annotation)
            annotation, info = (args[0] if args else Any), None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, candidate in annotation.model_fields.items():
                if (candidate.alias or name) == element:
                    annotation, info = candidate.annotation, candidate
                    break
            else:
                return None, None
        elif get_origin(annotation) in (Union, types.UnionType):
            annotation = next((m for m in get_args(annotation) if _has_tag(m, element)), None)
        elif get_origin(annotation) is dict:
            annotation, info = get_args(annotation)[1], None
        else:
            return None, None
    return annotation, info


def _without_union_tags(model: type[BaseModel], path: FieldPath) -> FieldPath:
    """Drop the member tags pydantic puts into the paths of discriminated unions."""
    clean: list[str | int] = []
    annotation: Any = model
    for element in path:
        unwrapped = _unwrap(annotation)
        if get_origin(unwrapped) in (Union, types.UnionType) and any(
                _has_tag(member, element) for member in get_args(unwrapped)):
            annotation = next(m for m in get_args(unwrapped) if _has_tag(m, element))
            continue
        clean.append(element)
        annotation, _ = _field_at(model, tuple(clean))
    return tuple(clean)


def _discriminator(model: type[BaseModel], path: FieldPath) -> tuple[str, str]:
    """The key that picks a union member at `path`, and the values it may take."""
    union, info = _field_at(model, path)
    field = str(getattr(info, "discriminator", None) or "")
    key, tags = field, []
    for member in get_args(_unwrap(union)):
        member_field = member.model_fields[field]
        key = member_field.alias or field
        tags.extend(str(tag) for tag in get_args(member_field.annotation))
    return key, ", ".join(tags)


def _has_tag(member: Any, tag: str | int) -> bool:
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return False
    return any(get_origin(f.annotation) is Literal and tag in get_args(f.annotation)
               for f in member.model_fields.values())


def _allowed_keys(model: type[BaseModel], path: FieldPath) -> list[str]:
    annotation, _ = _field_at(model, path)
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


def _field_description(model: type[BaseModel], path: FieldPath) -> str | None:
    _, info = _field_at(model, path)
    return info.description if info is not None else None


def _duplicates(documents: list[SpecDocument], locator: Locator) -> list[Problem]:
    """A kind/name defined twice, or a second document of a singleton kind."""
    problems = []
    first: dict[tuple[str, str], SpecDocument] = {}
    singletons: dict[str, SpecDocument] = {}
    for document in documents:
        model = document.model
        earlier = singletons.get(document.kind) if model.singleton else None
        key = (document.kind, document.name)
        earlier = earlier or first.get(key)
        if earlier is None:
            first[key] = document
            if model.singleton:
                singletons[document.kind] = document
            continue
        line, column, path = locator.find(document.source, ("metadata", "name"))
        what = (f"a second {document.kind} document; there is only one (first at {earlier.source})"
                if model.singleton else
                f"{document.kind} {document.name!r} is defined twice (first at {earlier.source})")
        problems.append(Problem(document.source.file, line, column, what, document.kind,
                                document.name, path, code="duplicate"))
    return problems
