from __future__ import annotations

import contextlib
import copy
import pickle
import string
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenancy.connstr import EMPTY, MAX_LENGTH, ConnectionString, is_secret_key, parse
from tenancy.errors import InvalidConnectionString, TenantMisconfigured

SECRET = "S3cr3t-Pa55"


# -- the grammar ------------------------------------------------------------------


def test_architecture_example() -> None:
    cs = parse("Driver={PostgreSQL Unicode};Server=db1;Database=t2;Uid=app;Pwd={a;b}}c}")
    assert cs["pwd"] == "a;b}c"
    assert cs["PWD"] == cs["Pwd"] == "a;b}c"
    assert cs.redacted() == "Driver={PostgreSQL Unicode};Server=db1;Database=t2;Uid=app;Pwd=***"


def test_keys_case_insensitive_and_spelling_kept() -> None:
    cs = parse("SERVER=db1;database=t")
    assert cs["server"] == "db1"
    assert cs.get("DATABASE") == "t"
    assert "Server" in cs
    assert "nope" not in cs
    assert 42 not in cs  # type: ignore[comparison-overlap]
    assert list(cs) == ["SERVER", "database"]
    assert list(cs.items()) == [("SERVER", "db1"), ("database", "t")]
    assert cs.get("missing") is None
    assert cs.get("missing", "x") == "x"
    with pytest.raises(KeyError):
        cs["missing"]


def test_whitespace_trimmed_around_keys_and_unbraced_values() -> None:
    cs = parse("  Server \t=  db1  ;  Database= t 2 ")
    assert list(cs.items()) == [("Server", "db1"), ("Database", "t 2")]


def test_braced_values_keep_whitespace_and_literal_separators() -> None:
    cs = parse("Pwd={  a=b;c  };Database= {x} ;Port=1")
    assert cs["Pwd"] == "  a=b;c  "
    assert cs["Database"] == "x"
    assert cs["Port"] == "1"


def test_escaped_closing_brace() -> None:
    assert parse("Pwd={}}}")["Pwd"] == "}"
    assert parse("Pwd={}}}}}")["Pwd"] == "}}"
    assert parse("Pwd={a}}}")["Pwd"] == "a}"
    assert parse("Pwd={}}a}")["Pwd"] == "}a"
    assert parse("Pwd={}")["Pwd"] == ""
    assert parse("Pwd={{}")["Pwd"] == "{"


def test_trailing_and_empty_segments() -> None:
    assert parse("A=1;") == parse("A=1")
    assert list(parse(";;A=1;; ;B=2;;").items()) == [("A", "1"), ("B", "2")]
    assert len(parse("")) == 0
    assert parse(" ; ; ") == EMPTY


def test_empty_values() -> None:
    cs = parse("A=;B=  ;C={}")
    assert cs["A"] == cs["B"] == cs["C"] == ""


def test_unbraced_value_may_contain_equals_and_inner_braces() -> None:
    cs = parse("Database=/data/x}y=z{w.db")
    assert cs["Database"] == "/data/x}y=z{w.db"


def test_first_occurrence_wins() -> None:
    cs = parse("Server=good;Database=a;SERVER=evil;server=worse")
    assert cs["Server"] == "good"
    assert list(cs) == ["Server", "Database"]


def test_unicode_keys_and_values() -> None:
    cs = parse("Base=Überweisung;Pwd={pässwörd😀};Ключ=значение")
    assert cs["base"] == "Überweisung"
    assert cs["PWD"] == "pässwörd😀"
    assert cs["Ключ"] == "значение"
    assert parse(cs.to_odbc()) == cs


def test_case_folding_is_ascii_only() -> None:
    # Drivers compare keywords with strcasecmp(); "ß" is not "SS" to them.
    cs = parse("straße=1;STRASSE=2")
    assert cs["straße"] == "1"
    assert cs["strasse"] == "2"


# -- malformed input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Pwd={unterminated",
        "Pwd={a}}",  # the }} is an escape, so the brace never closes
        "Pwd={a}b;Server=x",  # text after the closing brace
        "Pwd={a} b",
        "Pwd={a}{b}",
        "Server",  # no '='
        "Server=x;garbage;Database=y",
        "=value",
        "  =value",
        "Se[rver=x",
        "Se]rver=x",
        "{Server}=x",
        "Ser}ver=x",
        "Se(r)ver=x",
        "Ser,ver=x",
        "Serv?er=x",
        "Serv*er=x",
        "Serv!er=x",
        "Serv@er=x",
        "Serv\x01er=x",
        "Server=x\x00;Database=y",
        "Serv\x00er=x",
    ],
)
def test_malformed_input_is_refused(text: str) -> None:
    with pytest.raises(InvalidConnectionString):
        parse(text)


def test_invalid_connection_string_is_a_misconfiguration() -> None:
    with pytest.raises(TenantMisconfigured) as info:
        parse("Pwd={x")
    assert info.value.code == "tenant_misconfigured"


def test_absurd_length_is_refused() -> None:
    with pytest.raises(InvalidConnectionString, match="longer than"):
        parse("A=" + "x" * MAX_LENGTH)
    parse("A=" + "x" * (MAX_LENGTH - 2))  # exactly at the limit is fine


def test_not_text_is_refused() -> None:
    with pytest.raises(InvalidConnectionString):
        parse(b"Server=x")  # type: ignore[arg-type]


def test_error_positions_are_reported() -> None:
    with pytest.raises(InvalidConnectionString, match="at character 9"):
        parse("Server=x;garbage")


# -- hostile strings -------------------------------------------------------------------


def test_keyword_injection_inside_braces_stays_a_value() -> None:
    cs = parse("Driver={SQLite3};Pwd={x;Database=a;Driver=evil};Database=real")
    assert cs["Database"] == "real"
    assert cs["Driver"] == "SQLite3"
    assert cs["Pwd"] == "x;Database=a;Driver=evil"
    assert len(cs) == 3
    # Written back, the injected text is still inside one braced value.
    assert parse(cs.to_odbc()) == cs
    assert cs.to_odbc().count("Database=") == 2  # one real, one inside the braces


def test_brace_escape_cannot_close_early() -> None:
    # A naive parser stops at the first '}' and reads ";Database=evil" as a keyword.
    cs = parse("Pwd={a}};Database=evil};Database=good")
    assert cs["Pwd"] == "a};Database=evil"
    assert cs["Database"] == "good"


def test_duplicate_keys_with_different_case_first_wins() -> None:
    cs = parse("database=tenant_a;DATABASE=tenant_b;DataBase=tenant_c")
    assert cs["Database"] == "tenant_a"
    assert len(cs) == 1
    assert cs.to_odbc() == "database=tenant_a"


def test_value_beginning_with_brace_is_written_braced() -> None:
    cs = ConnectionString({"Database": "{x};Driver=evil"})
    assert cs.to_odbc() == "Database={{x}};Driver=evil};"
    assert parse(cs.to_odbc()) == cs


def test_huge_input_within_limit_is_linear() -> None:
    text = ";".join(f"K{i}={{{'}}' * 10}}}" for i in range(2000))
    assert len(text) < MAX_LENGTH
    cs = parse(text)
    assert len(cs) == 2000
    assert cs["K1999"] == "}" * 10


# -- writing back --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("with space", "with space"),
        ("/path/x}y=z.db", "/path/x}y=z.db"),  # sqliteodbc takes braces literally
        ("a;b", "{a;b}"),
        ("{x", "{{x}"),
        (" lead", "{ lead}"),
        ("trail\t", "{trail\t}"),
        ("", "{}"),
        ("a;}b", "{a;}}b}"),
    ],
)
def test_values_braced_only_when_needed(value: str, written: str) -> None:
    # A braced last value is terminated: FreeTDS misreads "...;PWD={x}" as "x}".
    end = ";" if written.startswith("{") else ""
    assert ConnectionString({"Database": value}).to_odbc() == f"Database={written}{end}"


def test_driver_and_passwords_always_braced() -> None:
    # psqlODBC percent-decodes unbraced passwords ('+' would become a space).
    cs = ConnectionString({"Driver": "SQLite3", "PWD": "a+b%41", "Password": "p"})
    assert cs.to_odbc() == "Driver={SQLite3};PWD={a+b%41};Password={p};"


def test_to_odbc_keeps_order_and_spelling() -> None:
    text = "DRIVER={PostgreSQL Unicode};server=db1;Port=5432"
    assert parse(text).to_odbc() == text


# -- the mapping ----------------------------------------------------------------------


def test_equality_ignores_order_and_spelling_and_hash_agrees() -> None:
    a = parse("Server=x;Database=y")
    b = parse("DATABASE=y;server=x")
    assert a == b
    assert hash(a) == hash(b)
    assert a.canonical() == b.canonical()
    assert a != parse("Server=x;Database=Y")
    assert a != parse("Server=x")
    assert a != {"Server": "x", "Database": "y"}
    assert len({a, b}) == 1


def test_immutable() -> None:
    cs = parse("A=1")
    with pytest.raises(AttributeError):
        cs._pairs = ()
    with pytest.raises(AttributeError):
        cs.anything = 1
    with pytest.raises(TypeError):
        cs["A"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        del cs._pairs


def test_pickle_and_copy_round_trip() -> None:
    cs = parse("Server=x;Pwd={a;b}")
    assert pickle.loads(pickle.dumps(cs)) == cs
    assert copy.deepcopy(cs) == cs
    assert copy.copy(cs) == cs


def test_constructor_validates() -> None:
    assert ConnectionString([(" A ", "1")]).to_odbc() == "A=1"
    assert ConnectionString([("A", "1"), ("a", "2")])["A"] == "1"
    for bad in ([("", "1")], [("A;B", "1")], [("A", "x\x00")], [("A", 1)]):
        with pytest.raises(InvalidConnectionString):
            ConnectionString(bad)  # type: ignore[arg-type]


def test_merged_over_receiver_wins_and_comes_first() -> None:
    template = parse("Uid=svc;Pwd=tpl;Encrypt=yes;SERVER=default")
    tenant = parse("Driver={X};server=db7;Database=t")
    merged = tenant.merged_over(template)
    assert list(merged.items()) == [
        ("Driver", "X"),
        ("server", "db7"),
        ("Database", "t"),
        ("Uid", "svc"),
        ("Pwd", "tpl"),
        ("Encrypt", "yes"),
    ]
    # Same as what ODBC's first-occurrence rule makes of the concatenation.
    assert merged == parse(tenant.to_odbc() + ";" + template.to_odbc())
    assert tenant.merged_over(EMPTY) == tenant
    assert EMPTY.merged_over(template) == template


def test_without() -> None:
    cs = parse("A=1;B=2;C=3")
    assert list(cs.without("b", "missing")) == ["A", "C"]
    assert cs.without() == cs


def test_replace_and_with() -> None:
    cs = parse("Server=a;database=x")
    replaced = cs.replace("DATABASE", "y")
    assert list(replaced.items()) == [("Server", "a"), ("database", "y")]
    assert list(cs.replace("Port", "1").items())[-1] == ("Port", "1")
    assert cs["database"] == "x"  # the original is untouched
    assert cs.with_(Port="5432", Server="b") == parse("Server=b;Database=x;Port=5432")
    with pytest.raises(InvalidConnectionString):
        cs.replace("bad;key", "v")
    with pytest.raises(InvalidConnectionString):
        cs.replace("Pwd", "nul\x00")


# -- redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "PWD",
        "pwd",
        "Password",
        "SSLPassword",
        "NewPassword",
        "ClientSecret",
        "KeyStoreSecret",
        "AccessToken",
        "access_token",
        "Auth Token",
        "pqopt",
        "Passphrase",
        "api_key",
        "Credentials",
    ],
)
def test_secret_values_never_shown(key: str) -> None:
    cs = ConnectionString({"Server": "db1", key: SECRET})
    assert is_secret_key(key)
    for shown in (str(cs), repr(cs), cs.redacted(), f"{cs}", f"{cs!r}", str([cs]), str({"x": cs})):
        assert SECRET not in shown
        assert "db1" in shown or shown == ""
    assert SECRET in cs.to_odbc()  # the driver still gets it


@pytest.mark.parametrize("key", ["Server", "Database", "Uid", "Authentication", "Encrypt"])
def test_non_secret_keys_are_shown(key: str) -> None:
    assert not is_secret_key(key)
    assert "visible" in ConnectionString({key: "visible"}).redacted()


def test_redacted_format() -> None:
    cs = parse("Driver={SQLite3};Database=/x.db;Pwd={a;b}")
    assert cs.redacted() == "Driver={SQLite3};Database=/x.db;Pwd=***"
    assert repr(cs) == "ConnectionString('Driver={SQLite3};Database=/x.db;Pwd=***')"


def test_secrets_not_in_traceback_of_code_holding_one() -> None:
    cs = parse(f"Server=x;Pwd={{{SECRET}}}")
    exc = ValueError(f"cannot connect with {cs}")
    assert SECRET not in str(exc)
    assert SECRET not in "".join(traceback.format_exception_only(exc))


@pytest.mark.parametrize(
    "text",
    [
        f"Pwd={{{SECRET}",  # unterminated
        f"Pwd={{{SECRET}}}tail",  # text after brace
        f"Pwd={SECRET};{SECRET}",  # a secret split at an unbraced ';' becomes a segment
        f"Pwd=x;{SECRET}[=1",  # ... or a bad keyword
        f"Pwd={SECRET}\x00",
        f"Pwd={SECRET};={SECRET}",
        f"Pwd={{{SECRET}}}{{{SECRET}}}",
        f"Pwd={SECRET};" + "x" * MAX_LENGTH,
        f"{SECRET}!=1",
    ],
)
def test_error_messages_never_contain_values(text: str) -> None:
    with pytest.raises(InvalidConnectionString) as info:
        parse(text)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert all(SECRET not in str(v) for v in info.value.details.values())


def test_error_names_only_well_known_keys() -> None:
    with pytest.raises(InvalidConnectionString, match="'Pwd'"):
        parse("Pwd={x")
    with pytest.raises(InvalidConnectionString) as info:
        parse("Hunter2Fragment={x")
    assert "Hunter2Fragment" not in str(info.value)


# -- properties --------------------------------------------------------------------------

_KEY_CHARS = st.characters(
    blacklist_categories=["Cs", "Cc"],
    blacklist_characters="[]{}(),;?*=!@",
)
_keys = st.text(_KEY_CHARS, min_size=1, max_size=12).filter(lambda k: k.strip(" \t\r\n\f\v"))
_values = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))


@given(st.lists(st.tuples(_keys, _values), max_size=8))
@settings(max_examples=300)
def test_round_trip_through_odbc_text(pairs: list[tuple[str, str]]) -> None:
    cs = ConnectionString(pairs)
    again = parse(cs.to_odbc())
    assert again == cs
    assert list(again.items()) == list(cs.items())
    assert again.canonical() == cs.canonical()


@given(st.lists(st.tuples(_keys, _values), max_size=8))
def test_redacted_never_contains_secret_values(pairs: list[tuple[str, str]]) -> None:
    cs = ConnectionString([(k, v) for k, v in pairs]).replace("Pwd", SECRET + "\x01")
    assert SECRET not in cs.redacted()
    assert SECRET not in repr(cs)


@given(st.text(max_size=200))
@settings(max_examples=500)
def test_parse_raises_only_invalid_connection_string(text: str) -> None:
    with contextlib.suppress(InvalidConnectionString):
        parse(text)


_grammarish = st.text(alphabet=string.ascii_letters[:4] + "{}=; \t\x00[", max_size=60)


@given(_grammarish)
@settings(max_examples=1000)
def test_parse_of_grammar_soup_is_consistent(text: str) -> None:
    try:
        cs = parse(text)
    except InvalidConnectionString as exc:
        assert "\x00" not in str(exc)
        return
    assert parse(cs.to_odbc()) == cs
