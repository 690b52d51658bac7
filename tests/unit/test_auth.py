from __future__ import annotations

import pytest

from proxy.auth import Authenticator, hash_token
from proxy.config import TokenSettings
from proxy.errors import Forbidden, RateLimited, Unauthenticated


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None, **kw: object) -> Authenticator:
    tokens = [
        TokenSettings(name="all", sha256=hash_token("s3cret-all"), classes=("read", "write")),
        TokenSettings(
            name="beta-only", sha256=hash_token("s3cret-beta"), tenants=("beta.example", "7")
        ),
        TokenSettings(name="slow", sha256=hash_token("s3cret-slow"), rate_per_s=2.0),
    ]
    return Authenticator(tokens, clock=clock or Clock())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer wrong"])
def test_bad_credentials_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        make().authenticate(header)


def test_token_scope_by_tenant_and_class() -> None:
    auth = make()
    everything = auth.authenticate("Bearer s3cret-all")
    everything.check_tenant(2, "beta.example")
    everything.check_class("write")
    with pytest.raises(Forbidden):
        everything.check_class("admin")

    beta = auth.authenticate("bearer s3cret-beta")
    beta.check_tenant(2, "BETA.example")  # domains compare case-insensitively
    beta.check_tenant(7, "other.example")  # listed by id
    with pytest.raises(Forbidden):
        beta.check_tenant(3, "gamma.example")
    with pytest.raises(Forbidden):
        beta.check_class("write")


def test_rate_limit_refuses_with_retry_after_and_recovers() -> None:
    clock = Clock()
    auth = make(clock)
    auth.authenticate("Bearer s3cret-slow")
    auth.authenticate("Bearer s3cret-slow")
    with pytest.raises(RateLimited) as info:
        auth.authenticate("Bearer s3cret-slow")
    assert info.value.retry_after is not None and info.value.retry_after >= 1
    clock.now += 0.5
    auth.authenticate("Bearer s3cret-slow")


def test_token_value_never_appears_in_errors() -> None:
    with pytest.raises(Unauthenticated) as info:
        make().authenticate("Bearer not-a-real-token-value")
    assert "not-a-real-token-value" not in str(info.value)
