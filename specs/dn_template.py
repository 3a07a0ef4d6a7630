"""DN templates: `cn=[[People.UserPrincipalName]], o=Users, c=uk` and `[[[People.Xu55]]]`.

A template is a DN string (RFC 4514, read tolerantly: attribute types in any case, spaces around
`,` `+` `=`) whose values may hold substitutions of the person's fields: `[[Entity.Field]]`
is replaced by the field's value escaped as RFC 4514 §2.4 requires, `[[[Entity.Field]]]` by the
value as it is (the field holds DN text, e.g. a whole DN from the directory). A raw substitution
may stand alone in place of RDNs (`[[[People.Xu55]]], o=Users`).

The pipeline the provisioning CA uses to build a certificate subject:

    template = parse(text)                      # structure and substitutions; DnTemplateError
    dn = render(template, person.dn_fields())   # strict RFC 4514 string, e.g. CN=a\\, b,O=Users
    name = build_name(parse_dn(dn))             # x509.Name, RDNs in ASN.1 order
    # or, in one call: subject_name(template, values)

`fields(text)` lists the substitutions without needing a valid DN around them; `check(text)`
parses and also proves the literal values acceptable by building a Name with sample values.

Attribute types: CN O OU C L ST DC UID serialNumber emailAddress (also E), in any case, or a
dotted OID. Entity and field names match case-insensitively (the product reads them from a SQL
view, whose column names are case-insensitive). Pure: imports nothing outside `specs`, and
`cryptography` only when a Name is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

ENTITIES: tuple[str, ...] = ("People",)
_FOLDED_ENTITIES = frozenset(entity.lower() for entity in ENTITIES)

# Folded spelling -> the canonical type name render() emits.
ATTRIBUTE_TYPES: dict[str, str] = {
    "cn": "CN", "o": "O", "ou": "OU", "c": "C", "l": "L", "st": "ST", "dc": "DC",
    "uid": "UID", "serialnumber": "serialNumber", "emailaddress": "emailAddress",
    "e": "emailAddress",
}
KNOWN_TYPES: tuple[str, ...] = ("CN", "O", "OU", "C", "L", "ST", "DC", "UID", "serialNumber",
                                "emailAddress", "E")
_OIDS: dict[str, str] = {
    "CN": "2.5.4.3", "O": "2.5.4.10", "OU": "2.5.4.11", "C": "2.5.4.6", "L": "2.5.4.7",
    "ST": "2.5.4.8", "DC": "0.9.2342.19200300.100.1.25", "UID": "0.9.2342.19200300.100.1.1",
    "serialNumber": "2.5.4.5", "emailAddress": "1.2.840.113549.1.9.1",
}
# Values that satisfy each type's constraints, for substitutions when checking a template.
_SAMPLES: dict[str, str] = {"C": "XX", "emailAddress": "sample@example.com"}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE_RE = re.compile(rf"^({_NAME})\.({_NAME})$")
_OID_RE = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPABLE = ' "#+,;<=>\\'
_MUST_ESCAPE = '"+,;<>\\'
_UNSAFE_IN_VALUE = '";<>'


class DnTemplateError(ValueError):
    """A template (or a rendered DN) that cannot make a distinguished name.

    `message` says what is wrong (positions in it count from 1); `position` is the 0-based
    offset in the text where the problem starts, when known.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class BracketError(DnTemplateError):
    """Unbalanced or malformed substitution brackets."""


class DnSyntaxError(DnTemplateError):
    """Not a valid DN: an RDN without `=`, an unknown attribute type, an empty value, ..."""


class MissingFieldError(DnTemplateError):
    """render() was given no value for a substituted field."""


@dataclass(frozen=True, slots=True)
class Field:
    """A substitution: `[[Entity.Name]]` (escaped) or `[[[Entity.Name]]]` (raw)."""

    entity: str
    name: str
    raw: bool
    text: str  # as written, brackets included
    position: int  # offset of the first bracket in the template


@dataclass(frozen=True, slots=True)
class Ava:
    """`type=value`: the canonical type name, and the value as literal text and substitutions."""

    type: str
    value: tuple[str | Field, ...]

    @property
    def literal(self) -> str | None:
        """The value, when it holds no substitution."""
        if any(isinstance(piece, Field) for piece in self.value):
            return None
        return "".join(self.value)  # type: ignore[arg-type]


# An RDN of a template: its AVAs (several when joined with `+`); a raw Field standing alone
# takes the place of one or more AVAs or RDNs.
Rdn = tuple[Ava | Field, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; `rdns` in the order written (RFC 4514 string order)."""

    text: str
    rdns: tuple[Rdn, ...]

    def fields(self) -> list[Field]:
        found: list[Field] = []
        for rdn in self.rdns:
            for part in rdn:
                if isinstance(part, Field):
                    found.append(part)
                else:
                    found.extend(p for p in part.value if isinstance(p, Field))
        return found


# --- lexing ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Char:
    char: str
    escaped: bool
    position: int


_Item = _Char | Field


def _lex(text: str, *, tokens: bool = True, strict: bool = True) -> list[_Item]:
    """Characters (with their escaped flag) and substitutions.

    `tokens=False` reads plain DN text (brackets mean nothing); `strict=False` lets bad escapes
    through, so fields() can list substitutions of a template that is otherwise broken.
    """
    items: list[_Item] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            i = _lex_escape(text, i, items, strict)
            continue
        if tokens and char == "[" and text.startswith("[[", i):
            field, i = _lex_field(text, i)
            items.append(field)
            continue
        if tokens and char == "]" and text.startswith("]]", i):
            raise BracketError(f"']]' at position {i + 1} closes no '[['", i)
        items.append(_Char(char, False, i))
        i += 1
    return items


def _lex_escape(text: str, start: int, items: list[_Item], strict: bool) -> int:
    nxt = text[start + 1:start + 2]
    if nxt and nxt in _ESCAPABLE:
        items.append(_Char(nxt, True, start))
        return start + 2
    if nxt in _HEX and text[start + 2:start + 3] in _HEX:
        octets = bytearray()
        i = start
        while text[i:i + 1] == "\\" and text[i + 1:i + 2] in _HEX and text[i + 2:i + 3] in _HEX:
            octets.append(int(text[i + 1:i + 3], 16))
            i += 3
        try:
            decoded = octets.decode("utf-8")
        except UnicodeDecodeError:
            if strict:
                raise DnSyntaxError(f"the hex escapes at position {start + 1} are not UTF-8",
                                    start) from None
            decoded = octets.decode("utf-8", "replace")
        items.extend(_Char(c, True, start) for c in decoded)
        return i
    if strict:
        shown = f"'\\{nxt}'" if nxt else "a '\\' at the end"
        raise DnSyntaxError(
            f"{shown} at position {start + 1} is not an escape: escape one of "
            f"{_ESCAPABLE.strip()} or a space with '\\', or any character as '\\' and two hex "
            "digits per UTF-8 octet", start)
    if nxt:
        items.append(_Char(nxt, True, start))
    return start + 1 + len(nxt)


def _lex_field(text: str, start: int) -> tuple[Field, int]:
    opening = len(text) - len(text[start:].lstrip("["))  # index after the run of '['
    width = opening - start
    if width > 3:
        raise BracketError(f"{'[' * width} at position {start + 1}: use [[ (escaped) or "
                           "[[[ (raw)", start)
    close = text.find("]]", opening)
    nested = text.find("[", opening)
    if close < 0 or 0 <= nested < close:
        ends = [k for k in (nested, text.find(",", opening), len(text)) if k >= 0]
        shown = text[start:min(ends)].rstrip()
        raise BracketError(f"{shown!r} at position {start + 1} is not closed with "
                           f"{']' * width}", start)
    after = len(text) - len(text[close:].lstrip("]"))
    closing = after - close
    written = text[start:after]
    if closing != width:
        raise BracketError(f"{written!r} at position {start + 1} opens with {'[' * width} but "
                           f"closes with {']' * closing}", start)
    match = _REFERENCE_RE.match(text[opening:close])
    if match is None:
        raise BracketError(f"{written!r} at position {start + 1} does not name a field: write "
                           f"{'[' * width}Entity.Field{']' * width}, e.g. "
                           f"{'[' * width}People.FullName{']' * width}", start)
    return Field(match.group(1), match.group(2), width == 3, written, start), after


def fields(text: str) -> list[Field]:
    """The substitutions of a template, in order; BracketError if its brackets are wrong."""
    return [item for item in _lex(text, strict=False) if isinstance(item, Field)]


# --- parsing --------------------------------------------------------------------------------

def parse(text: str) -> Template:
    """A template's RDNs and substitutions; DnTemplateError (BracketError, DnSyntaxError)."""
    return _parse(text, tokens=True)


def parse_dn(text: str) -> list[list[tuple[str, str]]]:
    """A DN string (as render() makes it, or tolerant RFC 4514) as RDNs of (type, value) pairs.

    The RDNs are in string order; types are canonical (`cn` -> `CN`), values unescaped.
    """
    template = _parse(text, tokens=False)
    return [[(ava.type, ava.literal or "") for ava in rdn if isinstance(ava, Ava)]
            for rdn in template.rdns]


def _parse(text: str, *, tokens: bool) -> Template:
    items = _lex(text, tokens=tokens)
    what = "template" if tokens else "DN"
    if not _strip(items):
        raise DnSyntaxError(f"the {what} is empty", 0)
    rdns: list[Rdn] = []
    for rdn_items in _split(items, ","):
        if not _strip(rdn_items):
            raise DnSyntaxError(f"an RDN of the {what} is empty (two commas, or a comma at "
                                "the start or end)", _position(rdn_items, items))
        rdn: list[Ava | Field] = []
        for ava_items in _split(rdn_items, "+"):
            ava_items = _strip(ava_items)
            if not ava_items:
                raise DnSyntaxError(f"an empty value joined with '+' in the {what}",
                                    _position(rdn_items, items))
            rdn.append(_ava(ava_items))
        rdns.append(tuple(rdn))
    return Template(text, tuple(rdns))


def _ava(items: list[_Item]) -> Ava | Field:
    equals = next((k for k, item in enumerate(items)
                   if isinstance(item, _Char) and item.char == "=" and not item.escaped), None)
    first = items[0]
    position = first.position
    if equals is None:
        if len(items) == 1 and isinstance(first, Field):
            if first.raw:
                return first
            raise DnSyntaxError(
                f"{first.text} stands where an RDN belongs, but an escaped substitution can only "
                f"be a value (type={first.text}); for a field that holds DN text use "
                f"[{first.text}]", position)
        raise DnSyntaxError(f"{_show(items)!r} is not type=value (no '=')", position)
    type_items = _strip(items[:equals])
    if any(isinstance(item, Field) for item in type_items):
        raise DnSyntaxError(f"{_show(items)!r}: a substitution cannot give the attribute type",
                            position)
    written = "".join(item.char for item in type_items)  # type: ignore[union-attr]
    if not written:
        raise DnSyntaxError(f"{_show(items)!r} has no attribute type before '='", position)
    if any(item.escaped for item in type_items):  # type: ignore[union-attr]
        raise DnSyntaxError(f"attribute type {written!r} cannot hold escapes", position)
    try:
        canonical = canonical_type(written)
    except DnSyntaxError as error:
        raise DnSyntaxError(error.message, position) from None
    value_items = _strip(items[equals + 1:])
    if not value_items:
        raise DnSyntaxError(f"{written}= has an empty value", position)
    value: list[str | Field] = []
    for k, item in enumerate(value_items):
        if isinstance(item, Field):
            value.append(item)
            continue
        if not item.escaped:
            if k == 0 and item.char == "#":
                raise DnSyntaxError(
                    f"the value of {written} starts with '#', which means a hex-encoded BER "
                    "value; write '\\#' for a literal '#'", item.position)
            if item.char in _UNSAFE_IN_VALUE:
                raise DnSyntaxError(f"{item.char!r} in the value of {written} must be escaped "
                                    f"as '\\{item.char}'", item.position)
        if value and isinstance(value[-1], str):
            value[-1] += item.char
        else:
            value.append(item.char)
    return Ava(canonical, tuple(value))


def canonical_type(written: str) -> str:
    """`cn` -> `CN`, `E` -> `emailAddress`, a dotted OID as is; DnSyntaxError otherwise."""
    canonical = ATTRIBUTE_TYPES.get(written.lower())
    if canonical is not None:
        return canonical
    if _OID_RE.match(written):
        return written
    raise DnSyntaxError(f"unknown attribute type {written!r} (known: {', '.join(KNOWN_TYPES)}, "
                        "or a dotted OID)")


def _split(items: list[_Item], separator: str) -> list[list[_Item]]:
    parts: list[list[_Item]] = [[]]
    for item in items:
        if isinstance(item, _Char) and item.char == separator and not item.escaped:
            parts.append([])
        else:
            parts[-1].append(item)
    return parts


def _strip(items: list[_Item]) -> list[_Item]:
    def blank(item: _Item) -> bool:
        return isinstance(item, _Char) and not item.escaped and item.char.isspace()

    start, end = 0, len(items)
    while start < end and blank(items[start]):
        start += 1
    while end > start and blank(items[end - 1]):
        end -= 1
    return items[start:end]


def _show(items: Sequence[_Item]) -> str:
    return "".join(item.text if isinstance(item, Field) else
                   ("\\" + item.char if item.escaped else item.char) for item in items)


def _position(part: list[_Item], whole: list[_Item]) -> int | None:
    if part:
        return part[0].position
    return whole[0].position if whole else None


# --- rendering ------------------------------------------------------------------------------

def escape_value(value: str, *, leading: bool = True, trailing: bool = True) -> str:
    """Escape an attribute value as RFC 4514 §2.4 requires.

    `"+,;<>\\` always, NUL as `\\00`, a space or `#` at the start and a space at the end.
    `leading`/`trailing` say whether `value` starts/ends the whole attribute value (it may be
    one piece of a value built from several substitutions).
    """
    last = len(value) - 1
    out: list[str] = []
    for i, char in enumerate(value):
        if char in _MUST_ESCAPE:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        elif i == 0 and leading and char in " #":
            out.append("\\" + char)
        elif i == last and trailing and char == " ":
            out.append("\\ ")
        else:
            out.append(char)
    return "".join(out)


def render(template: str | Template, values: Mapping[str, str]) -> str:
    """The RFC 4514 string of a template for one person.

    `values` maps field names (`FullName`, `Xu55`; Person.dn_fields()) to values; names match
    case-insensitively. [[..]] values are escaped (§2.4), [[[..]]] ones inserted as they are;
    literal text is re-escaped the same way, types written canonically, no spaces around
    separators. MissingFieldError names every field without a value.
    """
    parsed = parse(template) if isinstance(template, str) else template
    resolved = _resolve(parsed.fields(), values)
    rdns: list[str] = []
    for rdn in parsed.rdns:
        parts = []
        for part in rdn:
            if isinstance(part, Field):
                parts.append(resolved[part])
            else:
                parts.append(f"{part.type}={_render_value(part.value, resolved)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def _resolve(found: Iterable[Field], values: Mapping[str, str]) -> dict[Field, str]:
    folded: dict[str, str] | None = None
    resolved: dict[Field, str] = {}
    missing: list[str] = []
    for field in found:
        if field.entity.lower() not in _FOLDED_ENTITIES:
            raise MissingFieldError(f"{field.text}: unknown entity {field.entity!r} (known: "
                                    f"{', '.join(ENTITIES)})", field.position)
        value = values.get(field.name)
        if value is None:
            if folded is None:
                folded = {key.lower(): v for key, v in values.items()}
            value = folded.get(field.name.lower())
        if value is None:
            missing.append(field.text)
        else:
            resolved[field] = value
    if missing:
        raise MissingFieldError(f"no value for {', '.join(dict.fromkeys(missing))}")
    return resolved


def _render_value(pieces: tuple[str | Field, ...], resolved: Mapping[Field, str]) -> str:
    # Runs of literal text and escaped substitutions, between raw substitutions. A run gets the
    # leading (trailing) escapes only when nothing is rendered before (after) it in the value.
    segments: list[tuple[bool, str]] = []  # (raw, text)
    for piece in pieces:
        raw = isinstance(piece, Field) and piece.raw
        text = resolved[piece] if isinstance(piece, Field) else piece
        if not raw and segments and not segments[-1][0]:
            segments[-1] = (False, segments[-1][1] + text)
        else:
            segments.append((raw, text))
    out: list[str] = []
    for k, (raw, text) in enumerate(segments):
        if raw:
            out.append(text)
            continue
        leading = not any(out)
        trailing = not any(rest for _, rest in segments[k + 1:])
        out.append(escape_value(text, leading=leading, trailing=trailing))
    return "".join(out)


# --- x509.Name ------------------------------------------------------------------------------

def build_name(rdns: Iterable[Iterable[tuple[str, str]]]) -> x509.Name:
    """An x509.Name from RDNs in RFC 4514 string order (as parse_dn() returns them).

    A DN string lists the most specific RDN first, the ASN.1 Name the most general first, so
    the list is reversed: `CN=a,O=b,C=uk` becomes Name([C, O, CN]) and prints back unchanged.
    DnSyntaxError for an unknown type or a value the type does not allow (C not two letters,
    CN longer than 64 characters, an empty value, ...).
    """
    from cryptography import x509

    built = []
    for rdn in rdns:
        attributes = []
        for written, value in rdn:
            canonical = canonical_type(written)
            if canonical == "C" and not (len(value) == 2 and value.isascii() and value.isalpha()):
                raise DnSyntaxError(f"C={value!r}: C takes a two-letter country code "
                                    "(ISO 3166), e.g. C=uk")
            oid = x509.ObjectIdentifier(_OIDS.get(canonical, canonical))
            try:
                attributes.append(x509.NameAttribute(oid, value))
            except ValueError as error:
                raise DnSyntaxError(f"{canonical}={value!r}: {error}") from None
        if not attributes:
            raise DnSyntaxError("an RDN is empty")
        built.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(list(reversed(built)))


def subject_name(template: str | Template, values: Mapping[str, str]) -> x509.Name:
    """The certificate subject a template gives for one person's field values."""
    return build_name(parse_dn(render(template, values)))


def check(text: str) -> Template:
    """Parse a template and prove its literal parts make a Name; DnTemplateError if not.

    Each value holding a substitution is replaced by a sample its type accepts (`XX` for C)
    and each raw substitution standing for RDNs by `CN=Sample`, then the Name is built: a
    literal C that is not two letters, an over-long literal CN and the like are caught here.
    """
    template = parse(text)
    rdns: list[list[tuple[str, str]]] = []
    for rdn in template.rdns:
        pairs = []
        for part in rdn:
            if isinstance(part, Field):
                pairs.append(("CN", "Sample"))
            else:
                literal = part.literal
                pairs.append((part.type, literal if literal is not None
                               else _SAMPLES.get(part.type, "Sample")))
        rdns.append(pairs)
    build_name(rdns)
    return template
