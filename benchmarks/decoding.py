"""Parameter decoding, body reading and schema validation of the pet store, one by one.

    taskset -c 0 .venv/bin/python benchmarks/decoding.py [--calls 20000] [--rounds 7]

Prints the median (and min) µs per call over several rounds (process CPU time). The
decoders and validators are the ones `create_app` compiles for the pet store's operations.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _wsgi import environ

from brrt_actors.spec import load_spec
from brrt_actors.stages.body import BodyReader
from brrt_actors.stages.parameters import ParameterDecoder
from brrt_actors.validation import compile_validator

ROOT = Path(__file__).resolve().parent.parent

PET = {"id": 1, "name": "Max", "breed": "Golden Retriever", "age": 3, "vaccinated": True,
       "tags": ["friendly", "trained"]}


def _median_us(call: Callable[[], Any], calls: int, rounds: int) -> tuple[float, float]:
    results = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            call()
        results.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(results), min(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    spec = load_spec(ROOT / "specs" / "petstore.yaml")
    operations = {op.operation_id: op for op in spec.operations}

    get_pet = ParameterDecoder(operations["get_pet"].parameters)
    list_pets = ParameterDecoder(operations["list_pets"].parameters)
    search = ParameterDecoder(operations["search"].parameters)
    add_pet = operations["add_pet"]
    assert add_pet.request_body is not None
    body_reader = BodyReader(add_pet.request_body, 16 * 1024 * 1024)
    body = b'{"name": "Rex", "breed": "Poodle", "age": 2, "tags": ["a"]}'
    pet_schema = operations["get_pet"].responses["200"].content["application/json"].schema
    assert pet_schema is not None
    pet_validator = compile_validator(pet_schema)
    list_schema = operations["list_pets"].responses["200"].content["application/json"].schema
    assert list_schema is not None
    list_validator = compile_validator(list_schema)
    ten_pets = [dict(PET, id=i) for i in range(1, 11)]
    bad_pet = dict(PET, age="old", breed="Wolf")

    list_env = environ("GET", "/pets", "limit=10&offset=20&tags=a&tags=b")
    search_env = environ("GET", "/search", "tags=a|b|c&filters[color]=red&q=ball")
    cases: dict[str, Callable[[], Any]] = {
        "path param (get_pet id)": lambda: get_pet.decode({"id": "42"}, {}),
        "query: limit, offset, tags": lambda: list_pets.decode({}, list_env),
        "query: pipe, deepObject, text": lambda: search.decode({}, search_env),
        "JSON body read + validated": lambda: body_reader.read(environ("POST", "/pets",
                                                                       body=body)),
        "response: one Pet, valid": lambda: pet_validator.errors(PET),
        "response: ten Pets, valid": lambda: list_validator.errors(ten_pets),
        "response: Pet, 2 errors listed": lambda: pet_validator.errors(bad_pet),
    }
    for decoded in (get_pet.decode({"id": "42"}, {}), list_pets.decode({}, list_env),
                    search.decode({}, search_env)):
        assert decoded[-1] == [], decoded[-1]  # the inputs are valid: no errors
    assert body_reader.read(environ("POST", "/pets", body=body))[1] == []
    assert len(pet_validator.errors(bad_pet)) == 2
    for name, call in cases.items():
        median, low = _median_us(call, args.calls, args.rounds)
        print(f"{name:34} {median:7.2f} µs (min {low:7.2f})")


if __name__ == "__main__":
    main()
