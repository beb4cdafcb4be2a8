"""Password hashes (controller/core/security.py): scrypt at N = 2**14 in production, the cost
kept in each stored hash, and an unknown username checked against a dummy of the same cost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from controller.core import security
from controller.core.config import Settings


@pytest.fixture
def production_cost() -> Iterator[None]:
    before = int(security.hash_password("x").split("$")[1])
    security.set_scrypt_cost(Settings.model_fields["password_scrypt_n"].default)
    yield
    security.set_scrypt_cost(before)


def test_production_hashes_cost_scrypt_2_14_and_the_dummy_costs_the_same(production_cost: None) -> None:
    stored = security.hash_password("Mật khẩu dài 2026")
    assert stored.startswith("scrypt$16384$8$1$")
    assert security.verify_password("Mật khẩu dài 2026", stored)
    assert not security.verify_password("mật khẩu dài 2026", stored)
    assert security.dummy_hash().split("$")[:4] == stored.split("$")[:4]


def test_a_stored_hash_keeps_its_cost_when_the_setting_changes(production_cost: None) -> None:
    stored = security.hash_password("Mật khẩu dài 2026")
    security.set_scrypt_cost(2**10)
    assert security.hash_password("khác").startswith("scrypt$1024$")
    assert security.verify_password("Mật khẩu dài 2026", stored)  # N read from the stored hash


@pytest.mark.parametrize("n", [1000, 2**9, 2**21])
def test_a_cost_that_is_not_a_power_of_two_in_range_is_refused_at_start(n: int) -> None:
    with pytest.raises(ValidationError, match="password_scrypt_n"):
        Settings(password_scrypt_n=n)
