"""Connections as URIs, and masking secret values in text and in chunked streams."""

from __future__ import annotations

import pytest

from orchestrator.models.secrets import Connection, StreamMasker, mask_json, mask_text


def test_uri_is_parsed_into_fields() -> None:
    conn = Connection.from_uri(
        "my_db", "postgresql://user:pw@db.example:5432/sales?sslmode=require"
    )
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "postgresql",
        "db.example",
        5432,
        "user",
        "pw",
        "sales",
    )
    assert conn.extra == {"sslmode": "require"}


def test_url_encoded_special_characters_are_decoded_and_round_trip() -> None:
    password = "p@ss:w/rd?#%&= é"
    uri = Connection(
        conn_id="c", conn_type="mysql", host="h", login="us@er", password=password, schema="a/b"
    ).get_uri()
    assert password not in uri  # encoded, so the URI stays parseable
    conn = Connection.from_uri("c", uri)
    assert (conn.login, conn.password, conn.schema, conn.host) == ("us@er", password, "a/b", "h")
    assert Connection.from_uri("c", "pg://u:p%40ss%2Fx@h/db").password == "p@ss/x"


def test_round_trip_keeps_every_field() -> None:
    conn = Connection(
        conn_id="c",
        conn_type="postgresql",
        host="db",
        port=6432,
        login="me",
        password="secret",
        schema="sales",
        extra={"sslmode": "require", "options": ["a", "b"]},
    )
    assert Connection.from_uri("c", conn.get_uri()) == conn


def test_password_and_extra_stay_out_of_the_repr() -> None:
    conn = Connection.from_uri("c", "pg://u:hunter22@h/db?token=xyz123")
    assert "hunter22" not in repr(conn) and "xyz123" not in repr(conn)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [("no-scheme-here", "must look like"), ("pg://h:port/db", "port is not a number")],
)
def test_bad_uris_are_explained_without_repeating_them(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        Connection.from_uri("c", uri)
    assert "connection 'c'" in str(caught.value)


def test_mask_text_and_json() -> None:
    assert mask_text("user s3cret and s3cret-long", {"s3cret", "s3cret-long"}) == "user *** and ***"
    data = {"env": {"A": "x=s3cret"}, "cmd": ["echo", "s3cret"], "n": 1}
    assert mask_json(data, {"s3cret"}) == {"env": {"A": "x=***"}, "cmd": ["echo", "***"], "n": 1}


def _stream(masker: StreamMasker, chunks: list[bytes]) -> bytes:
    return b"".join(masker.feed(chunk) for chunk in chunks) + masker.flush()


def test_a_value_split_over_chunks_is_masked_at_every_split_point() -> None:
    text = b"before TOPSECRET middle TOPSECRET after\n"
    for first in range(len(text) + 1):
        for second in range(first, len(text) + 1):
            chunks = [text[:first], text[first:second], text[second:]]
            assert _stream(StreamMasker({"TOPSECRET"}), chunks) == (
                b"before *** middle *** after\n"
            ), chunks


def test_stream_masking_byte_by_byte_with_overlapping_values() -> None:
    text = b"abc abcdef xabcdefx ab"
    out = _stream(StreamMasker({"abc", "abcdef"}), [bytes([b]) for b in text])
    assert out == mask_text(text.decode(), {"abc", "abcdef"}).encode() == b"*** *** x***x ab"


def test_stream_without_secrets_passes_chunks_through() -> None:
    masker = StreamMasker(set())
    assert masker.feed(b"abc") == b"abc" and masker.flush() == b""
