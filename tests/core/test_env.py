from __future__ import annotations

from pathlib import Path

import pytest

from portal.env import ERROR_NOT_A_BOOLEAN, EnvironmentError_, env_bool, env_int, env_list, env_str


def test_it_reads_a_secret_from_the_file_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("PORTAL_TEST_SECRET", "from-the-environment")
    monkeypatch.setenv("PORTAL_TEST_SECRET_FILE", str(secret))
    assert env_str("PORTAL_TEST_SECRET") == "from-a-file"


def test_it_uses_the_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_TEST_X", raising=False)
    assert env_str("PORTAL_TEST_X", "d") == "d"
    assert env_int("PORTAL_TEST_X", 7) == 7
    assert env_bool("PORTAL_TEST_X", True) is True
    assert env_list("PORTAL_TEST_X", ["a"]) == ["a"]


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("On", True), ("0", False), ("off", False)])
def test_it_understands_boolean_words(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("PORTAL_TEST_FLAG", raw)
    assert env_bool("PORTAL_TEST_FLAG") is expected


def test_it_rejects_a_boolean_it_does_not_understand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_TEST_FLAG", "maybe")
    with pytest.raises(EnvironmentError_) as error:
        env_bool("PORTAL_TEST_FLAG")
    assert str(error.value) == ERROR_NOT_A_BOOLEAN.format(name="PORTAL_TEST_FLAG", value="maybe")


def test_it_rejects_a_number_that_is_not_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_TEST_N", "ten")
    with pytest.raises(EnvironmentError_, match="whole number"):
        env_int("PORTAL_TEST_N", 1)


def test_it_splits_lists_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_TEST_LIST", "a.example, b.example ,,")
    assert env_list("PORTAL_TEST_LIST", []) == ["a.example", "b.example"]
