"""Wire users in the configuration, and their SCRAM exchange (scramp's client as the peer)."""

from __future__ import annotations

import re

import pytest
from scramp import ScramClient

from proxy.config import ConfigError, from_mapping
from proxy.frontends.pgwire.auth import AuthFailed, ScramExchange, make_verifier, verifier_of

VERIFIER = make_verifier("s3cret", iterations=4096)


def settings(**pgwire: object) -> dict[str, object]:
    return {
        "controller": {"connection_string": "Driver=SQLite3;Database=/tmp/c.db"},
        "tokens": [{"name": "full", "sha256": "a" * 64}],
        "pgwire": pgwire,
    }


def test_a_wire_user_is_read_with_its_verifier() -> None:
    s = from_mapping(
        settings(
            enabled=True,
            port=6543,
            users=[{"name": "app", "token": "full", "scram_sha256": VERIFIER}],
        )
    )
    assert s.pgwire.enabled and s.pgwire.port == 6543
    [user] = s.pgwire.users
    assert (user.name, user.token, user.dialect) == ("app", "full", "postgres")


@pytest.mark.parametrize(
    ("pgwire", "problem"),
    [
        ({"users": [{"name": "app", "token": "nope", "scram_sha256": VERIFIER}]}, "no [[tokens]]"),
        ({"users": [{"name": "app", "token": "full", "scram_sha256": "plain"}]}, "verifier"),
        ({"users": [{"name": "a.b", "token": "full", "scram_sha256": VERIFIER}]}, "without '.'"),
        ({"users": [{"name": "app", "token": "full", "scram_sha256": VERIFIER},
                    {"name": "APP", "token": "full", "scram_sha256": VERIFIER}]}, "unique"),
        ({"tls_cert_file": "/x.crt"}, "go together"),
        ({"port": 0}, "TCP port"),
        ({"users": [{"name": "app", "token": "full", "scram_sha256": VERIFIER, "pw": 1}]},
         "unknown"),
        ({"nope": 1}, "unknown"),
    ],
)  # fmt: skip
def test_wire_settings_that_do_not_fit_are_refused(pgwire: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        from_mapping(settings(**pgwire))


def _exchange(secret: str, verifier: str | None) -> bytes:
    user = None
    if verifier is not None:
        user = from_mapping(
            settings(users=[{"name": "app", "token": "full", "scram_sha256": verifier}])
        ).pgwire.users[0]
    server = ScramExchange(verifier_of(user))
    client = ScramClient(["SCRAM-SHA-256"], "app", secret)
    first = server.first(client.get_client_first().encode())
    client.set_server_first(first.decode())
    final = server.final(client.get_client_final().encode())
    client.set_server_final(final.decode())  # the client checks the server's proof too
    return final


def test_the_right_secret_passes_and_the_server_proves_itself() -> None:
    assert _exchange("s3cret", VERIFIER).startswith(b"v=")


def test_a_wrong_secret_and_an_unknown_user_fail_alike() -> None:
    with pytest.raises(AuthFailed):
        _exchange("wrong", VERIFIER)
    with pytest.raises(AuthFailed):
        _exchange("s3cret", None)


def test_libpqs_empty_user_name_is_accepted() -> None:
    server = ScramExchange(verifier_of(None))
    assert server.first(b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL").startswith(
        b"r=fyko+d2lbbFgONRv9qkxdawL"
    )
