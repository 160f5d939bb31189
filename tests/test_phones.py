"""The one phone normaliser: every spelling of a Saudi number gives one E.164."""

from __future__ import annotations

import pytest

from services import phones
from services.errors import Invalid


@pytest.mark.parametrize(
    "raw",
    [
        "0501234567",
        "+966 50 123 4567",
        "00966501234567",
        "966501234567",
        "+966501234567",
        "050-123-4567",
        "(050) 123 4567",
        "050.123.4567",
        " 0501234567 ",
        "+966 (50) 123-4567",
        "00 966 50 123 4567",
    ],
)
def test_every_spelling_of_a_saudi_mobile_gives_one_e164(raw: str) -> None:
    assert phones.normalise(raw, "SA") == "+966501234567"


def test_riyadh_landline_in_national_form_is_normalised() -> None:
    assert phones.normalise("011 465 1234", "SA") == "+966114651234"


def test_region_decides_how_a_national_number_is_read() -> None:
    assert phones.normalise("020 7946 0018", "GB") == "+442079460018"
    assert phones.normalise("+966501234567", "GB") == "+966501234567"


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "abc", "0501234567x", "12", "05012", "+966 50 123", "50+1234567", "++966501234567", "0501234567890123"],
)
def test_invalid_input_is_reported_with_its_field(raw: str) -> None:
    with pytest.raises(Invalid) as err:
        phones.normalise(raw, "SA", field="remote_number")
    assert err.value.field == "remote_number"
    assert err.value.message


def test_invalid_number_message_names_the_input_and_region() -> None:
    with pytest.raises(Invalid) as err:
        phones.normalise("0101234567", "SA")
    assert "0101234567" in err.value.message and "SA" in err.value.message


def test_try_normalise_returns_none_for_internal_extensions() -> None:
    assert phones.try_normalise("1001", "SA") is None
    assert phones.try_normalise(None, "SA") is None
    assert phones.try_normalise("0501234567", "SA") == "+966501234567"


def test_digits_of_strips_everything_but_digits() -> None:
    assert phones.digits_of("+966 (50) 123-4567") == "966501234567"
    assert phones.digits_of("") == ""


def test_region_support_is_checked_case_insensitively() -> None:
    assert phones.is_valid_region("sa")
    assert phones.is_valid_region("AE")
    assert not phones.is_valid_region("XX")
    assert not phones.is_valid_region("")


def test_international_format_for_display() -> None:
    assert phones.format_international("+966501234567") == "+966 50 123 4567"
    assert phones.format_international(None) == ""
