import pytest

from loadgen.endpoints import accumulator_ws_url, normalize_base_url
from loadgen.errors import UsageProblem
from loadgen.secrets import mask, redact_text, redact_url

KEY = "clk_abcdefghijklmnopqrstuvwxyz0123456789"


def test_mask_keeps_last_four():
    assert mask(KEY) == "****6789"
    assert mask("short") == "****"


def test_redact_url_query_token():
    url = f"ws://127.0.0.1:8080/v1/ws/accumulator/orderbook?token={KEY}&x=1"
    redacted = redact_url(url)
    assert KEY not in redacted
    assert "x=1" in redacted


def test_redact_text_known_key_and_token_param():
    text = f"failed GET /x?token=abc123 with key {KEY}"
    redacted = redact_text(text, [KEY])
    assert KEY not in redacted
    assert "abc123" not in redacted


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("ws://localhost", "http://localhost:80"),
        ("https://[::1]", "https://[::1]:443"),
    ],
)
def test_normalize_base_url(given, expected):
    assert normalize_base_url(given) == expected


def test_normalize_rejects_other_schemes():
    with pytest.raises(UsageProblem, match="ftp://x"):
        normalize_base_url("ftp://x")


def test_ws_url_for_https():
    assert accumulator_ws_url("https://h:443", "a b") == (
        "wss://h:443/v1/ws/accumulator/a%20b"
    )
