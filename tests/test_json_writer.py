"""The JSON every answer is written with: valid JSON, UTF-8 kept, "/" unescaped, NaN refused."""
from __future__ import annotations

import json
import math

import pytest

from brrt_actors import json_writer
from brrt_actors.json_writer import write_json


@pytest.mark.parametrize("writer", [json_writer._by_keyword, json_writer._by_position,
                                    write_json])
def test_every_writer_keeps_text_and_slashes_and_refuses_nan(writer: object) -> None:
    assert callable(writer)
    value = {"name": "Zoë / ☃", "path": "/pets/1", "n": [1, 2.5, None, True]}
    text = writer(value)
    assert text == '{"name":"Zoë / ☃","path":"/pets/1","n":[1,2.5,null,true]}'
    assert json.loads(text) == value
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(OverflowError):
            writer({"x": bad})


def test_the_fast_writer_is_chosen_only_when_it_agrees_with_the_keyword_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert json_writer._choose() is json_writer._by_position  # ujson as installed

    def lenient(value: object) -> str:
        return "NaN" if value != value else json_writer._by_keyword(value)

    monkeypatch.setattr(json_writer, "_by_position", lenient)
    assert json_writer._choose() is json_writer._by_keyword  # writes NaN: not trusted

    def escaping(value: object) -> str:
        return json_writer._by_keyword(value).replace("/", "\\/")

    monkeypatch.setattr(json_writer, "_by_position", escaping)
    assert json_writer._choose() is json_writer._by_keyword  # writes other text
