"""specs.dn_template: parsing DN templates, RFC 4514 escaping, rendering, and x509.Name subjects."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from specs import dn_template as dn
from specs.dn_template import Ava, BracketError, DnSyntaxError, Field, MissingFieldError

MANUAL = "cn=[[People.UserPrincipalName]], o=Users, c=uk"  # the manual's examples (§3.10)
MANUAL_RAW = "[[[People.Xu55]]]"
JANE = {"UserPrincipalName": "jane.smith@corp.example", "FullName": "Jane Smith",
        "LogonName": "jsmith", "Xu55": "CN=Jane Smith,OU=Finance,OU=Staff,DC=corp,DC=example"}


def test_parse_gives_rdns_in_written_order_with_canonical_types() -> None:
    upn = Field("People", "UserPrincipalName", False, "[[People.UserPrincipalName]]", 3)
    assert dn.parse(MANUAL).rdns == (
        (Ava("CN", (upn,)),), (Ava("O", ("Users",)),), (Ava("C", ("uk",)),))
    assert dn.parse(MANUAL_RAW).rdns == ((Field("People", "Xu55", True, MANUAL_RAW, 0),),)
    template = dn.parse(r" cn = \ Caf\C3\A9 [[People.FirstName]] [[[People.X]]]+UID=x\,y , E=a@b")
    assert template.rdns[0][0].value == (" Café ", template.fields()[0], " ", template.fields()[1])
    assert [(a.type, a.literal) for a in template.rdns[0][1:] + template.rdns[1]] == [
        ("UID", "x,y"), ("emailAddress", "a@b")]
    assert dn.parse("2.5.4.3=x").rdns == ((Ava("2.5.4.3", ("x",)),),)


def test_fields_lists_substitutions_even_when_the_dn_is_wrong() -> None:
    assert [(f.entity, f.name, f.raw) for f in dn.fields(r"cx=[[People.A]] \q [[[Other.B]]]")] \
        == [("People", "A", False), ("Other", "B", True)]


@pytest.mark.parametrize(("template", "message"), [
    ("cn=[[People.X], o=y", "'[[People.X]' at position 4 is not closed with ]]"),
    ("cn=[[People.X", "'[[People.X' at position 4 is not closed with ]]"),
    ("cn=[[People.X [[People.Y]]", "'[[People.X' at position 4 is not closed with ]]"),
    ("cn=[[[People.X]]", "'[[[People.X]]' at position 4 opens with [[[ but closes with ]]"),
    ("cn=[[People.X]]]", "'[[People.X]]]' at position 4 opens with [[ but closes with ]]]"),
    ("cn=[[ ]]", "'[[ ]]' at position 4 does not name a field: write [[Entity.Field]], e.g. "
                 "[[People.FullName]]"),
    ("cn=[[People]]", "'[[People]]' at position 4 does not name a field: write "
                      "[[Entity.Field]], e.g. [[People.FullName]]"),
    ("cn=People.X]]", "']]' at position 12 closes no '[['"),
    ("cn=[[[[People.X]]]]", "[[[[ at position 4: use [[ (escaped) or [[[ (raw)"),
])
def test_malformed_brackets(template, message) -> None:
    with pytest.raises(BracketError) as error:
        dn.parse(template)
    assert error.value.message == message
    with pytest.raises(BracketError):
        dn.fields(template)


@pytest.mark.parametrize(("template", "message"), [
    ("", "the template is empty"),
    ("cx=a", "unknown attribute type 'cx' (known: CN, O, OU, C, L, ST, DC, UID, serialNumber, "
             "emailAddress, E, or a dotted OID)"),
    ("cn", "'cn' is not type=value (no '=')"),
    ("cn=, o=x", "cn= has an empty value"),
    ("=x", "'=x' has no attribute type before '='"),
    ("cn=a,,o=b", "an RDN of the template is empty (two commas, or a comma at the start or end)"),
    ("cn=a,", "an RDN of the template is empty (two commas, or a comma at the start or end)"),
    ("cn=a+", "an empty value joined with '+' in the template"),
    ("cn=#04", "the value of cn starts with '#', which means a hex-encoded BER value; write "
               "'\\#' for a literal '#'"),
    ("cn=a;b", "';' in the value of cn must be escaped as '\\;'"),
    ("cn=a\\q", "'\\q' at position 5 is not an escape: escape one of \"#+,;<=>\\ or a space "
                "with '\\', or any character as '\\' and two hex digits per UTF-8 octet"),
    ("cn=\\C3", "the hex escapes at position 4 are not UTF-8"),
    ("[[People.A]]=x", "'[[People.A]]=x': a substitution cannot give the attribute type"),
    ("[[People.Xu55]]", "[[People.Xu55]] stands where an RDN belongs, but an escaped "
                        "substitution can only be a value (type=[[People.Xu55]]); for a field "
                        "that holds DN text use [[[People.Xu55]]]"),
    ("c=usa", "C='usa': C takes a two-letter country code (ISO 3166), e.g. C=uk"),
])
def test_check_rejects_what_cannot_make_a_name(template, message) -> None:
    with pytest.raises(DnSyntaxError) as error:
        dn.check(template)
    assert error.value.message == message


def test_check_passes_on_what_cryptography_refuses() -> None:
    with pytest.raises(DnSyntaxError, match="^CN='x{65}': .*64"):  # ub-common-name
        dn.check("cn=" + "x" * 65)


def test_check_accepts_substitutions_wherever_values_go() -> None:
    for template in (MANUAL, MANUAL_RAW, "cn=Static DN", "c=[[People.Country]], o=x",
                     "[[[People.Dn]]], o=Users+cn=[[People.FullName]]", "e=[[People.Email]]"):
        assert dn.check(template).text == template


@pytest.mark.parametrize(("value", "escaped"), [
    (" lead", r"\ lead"),
    ("trail ", r"trail\ "),
    ("#lead", r"\#lead"),
    ("mid#dle # end#", "mid#dle # end#"),
    ('a,b+c;d<e>f"g\\h', r'a\,b\+c\;d\<e\>f\"g\\h'),
    ("a\x00b", r"a\00b"),
    ("Zoë Ünal", "Zoë Ünal"),
    ("a=b", "a=b"),
    (" ", "\\ "),
    ("   ", "\\  \\ "),
    (" # ", "\\ #\\ "),
    ("", ""),
])
def test_escape_value_follows_rfc_4514_section_2_4(value, escaped) -> None:
    assert dn.escape_value(value) == escaped
    if value:  # cryptography's own RFC 4514 output agrees
        name = x509.Name([x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.COMMON_NAME, value)])])
        assert name.rfc4514_string() == f"CN={escaped}"
        assert dn.parse_dn(f"CN={escaped}") == [[("CN", value)]]


def test_render_escapes_substitutions_and_inserts_raw_ones_as_they_are() -> None:
    values = {"FirstName": " #Ann", "LastName": "O'Neil, Jr ", "Xu55": "OU=A+UID=b,DC=x"}
    assert dn.render("cn=[[People.FirstName]] [[People.LastName]], [[[People.Xu55]]]", values) \
        == r"CN=\ #Ann O'Neil\, Jr\ ,OU=A+UID=b,DC=x"
    # Escapes at the start and end of a value only: not next to a raw substitution.
    assert dn.render("cn=[[[People.Xu55]]] [[People.LastName]]", {"Xu55": "x", "LastName": " "}) \
        == r"CN=x \ "
    assert dn.render("cn=[[People.LastName]][[[People.Xu55]]]", {"Xu55": "", "LastName": " a "}) \
        == r"CN=\ a\ "
    # Literal text is written canonically: types, spaces, escapes.
    assert dn.render(r" cn = a\2Cb\ ,  o=Users ", {}) == r"CN=a\,b\ ,O=Users"


def test_render_looks_fields_up_case_insensitively_and_names_missing_ones() -> None:
    assert dn.render("cn=[[people.fullname]]", JANE) == "CN=Jane Smith"
    with pytest.raises(MissingFieldError) as error:
        dn.render("cn=[[People.A]], ou=[[People.B]], o=[[People.A]]", {})
    assert error.value.message == "no value for [[People.A]], [[People.B]]"
    with pytest.raises(MissingFieldError):
        dn.render("cn=[[Person.FullName]]", JANE)


def test_the_name_lists_rdns_in_asn1_order() -> None:
    name = dn.subject_name(MANUAL, JANE)
    assert [a.oid for a in name] == [NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME,
                                     NameOID.COMMON_NAME]
    assert name.rfc4514_string() == "CN=jane.smith@corp.example,O=Users,C=uk"
    assert name == x509.Name.from_rfc4514_string("CN=jane.smith@corp.example,O=Users,C=uk")


def test_the_raw_example_takes_the_whole_dn_from_the_field() -> None:
    name = dn.subject_name(MANUAL_RAW, JANE)
    assert name.rfc4514_string() == JANE["Xu55"]
    assert [a.value for a in name] == ["example", "corp", "Staff", "Finance", "Jane Smith"]
    assert dn.subject_name("cn=Static DN", {}).rfc4514_string() == "CN=Static DN"


def test_a_multi_valued_rdn_joined_with_plus() -> None:
    name = dn.subject_name("cn=[[People.FullName]]+uid=[[People.LogonName]], o=Users", JANE)
    assert name.rfc4514_string() == "CN=Jane Smith+UID=jsmith,O=Users"
    assert [len(rdn) for rdn in name.rdns] == [1, 2]
    assert {a.oid for a in name.rdns[1]} == {NameOID.COMMON_NAME, NameOID.USER_ID}


def test_escaped_values_survive_the_round_trip() -> None:
    tricky = ' #Smith, "J" <j+s@x>; \\ é\x00 '
    name = dn.subject_name("cn=[[People.FullName]], e=[[People.Email]]",
                           {"FullName": tricky, "Email": "j@x.example"})
    assert [a.value for a in name] == ["j@x.example", tricky]
    assert name.rdns[0].get_attributes_for_oid(NameOID.EMAIL_ADDRESS)


def test_build_name_rejects_bad_raw_content() -> None:
    with pytest.raises(DnSyntaxError, match="unknown attribute type 'foo'"):
        dn.subject_name(MANUAL_RAW, {"Xu55": "foo=bar"})
    with pytest.raises(DnSyntaxError, match="is not type=value"):
        dn.subject_name(MANUAL_RAW, {"Xu55": "Jane Smith"})
