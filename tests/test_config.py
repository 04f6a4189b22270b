"""Settings: config file, environment, CLI; per-operation actor tuning and its precedence."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from brrt_actors.config import (
    ActorSettings,
    Settings,
    actor_settings_for,
    check_operation_env,
    env_suffix,
    knobs,
    load_settings,
    resolve_actor_settings,
)
from brrt_actors.errors import ConfigError
from brrt_actors.spec.model import Operation


def _operation(operation_id: str = "get_pet", **extensions: Any) -> Operation:
    return Operation(operation_id, "GET", "/pets/{id}", "/paths/~1pets~1{id}/get",
                     operation_id, extensions=extensions)


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "brrt.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _wheres(error: ConfigError) -> list[str]:
    return [where for where, _ in error.problems]


# -- defaults and the server settings ------------------------------------------------------

def test_defaults_match_the_design_table() -> None:
    settings = load_settings({})

    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.max_connections == 10000
    assert settings.keepalive_timeout_s == 5.0
    assert settings.max_body_bytes == 16777216
    assert settings.response_validation == "enforce"
    assert settings.shutdown_grace_s == 10.0
    assert (settings.http_engine, settings.workers) == ("httptools", 1)
    assert settings.max_blocking_ms == 100
    # BRRTRouter's, but `block` waits 1 s, not 50 ms: a burst of max_connections cheap
    # requests is served, not shed (issue 9)
    assert settings.actor_defaults == ActorSettings(
        workers=4, mailbox=1024, policy="block", block_timeout_ms=1000, deadline_ms=30000)


def test_environment_sets_the_server() -> None:
    settings = load_settings({
        "BRRTR_HOST": "0.0.0.0", "PORT": "9090", "BRRTR_MAX_CONNECTIONS": "50",
        "BRRTR_KEEPALIVE_TIMEOUT_S": "2.5", "BRRTR_MAX_BODY_BYTES": "1024",
        "BRRTR_RESPONSE_VALIDATION": "LOG", "BRRTR_SHUTDOWN_GRACE_S": "3",
    })

    assert (settings.host, settings.port, settings.max_connections) == ("0.0.0.0", 9090, 50)
    assert (settings.keepalive_timeout_s, settings.max_body_bytes) == (2.5, 1024)
    assert (settings.response_validation, settings.shutdown_grace_s) == ("log", 3.0)


# -- the HTTP engine and the worker processes ----------------------------------------------

def test_engine_and_workers_from_the_environment() -> None:
    settings = load_settings({"BRRTR_HTTP_ENGINE": " PyWSGI ", "BRRTR_WORKERS": "4"})

    assert (settings.http_engine, settings.workers) == ("pywsgi", 4)
    assert settings.actor_defaults.workers == 4  # the actors' greenlets: another setting


def test_engine_and_workers_from_the_config_file(tmp_path: Path) -> None:
    path = _file(tmp_path, "server: {http_engine: pywsgi, workers: 3}\n")

    settings = load_settings({}, path)

    assert (settings.http_engine, settings.workers) == ("pywsgi", 3)
    assert settings.actor_defaults == ActorSettings()


@pytest.mark.parametrize(("file_workers", "env", "flag", "expected"), [
    (None, {}, None, 1),  # default
    (3, {}, None, 3),  # config file beats the default
    (3, {"BRRTR_WORKERS": "5"}, None, 5),  # env beats the config file
    (3, {"BRRTR_WORKERS": "5"}, 7, 7),  # --workers beats the env
    (None, {}, 1, 1),  # --workers 1: one process, whatever the rest says
])
def test_workers_precedence(tmp_path: Path, file_workers: int | None, env: dict[str, str],
                            flag: int | None, expected: int) -> None:
    text = "" if file_workers is None else f"server: {{workers: {file_workers}}}\n"

    assert load_settings(env, _file(tmp_path, text), workers=flag).workers == expected


def test_engine_precedence(tmp_path: Path) -> None:
    path = _file(tmp_path, "server: {http_engine: pywsgi}\n")

    assert load_settings({}, path).http_engine == "pywsgi"
    assert load_settings({"BRRTR_HTTP_ENGINE": "httptools"}, path).http_engine == "httptools"


@pytest.mark.parametrize(("text", "where", "allowed"), [
    ("server: {http_engine: nginx}\n", "server.http_engine", "one of httptools, pywsgi"),
    ("server: {workers: 0}\n", "server.workers", "an integer >= 1"),
    ("server: {workers: many}\n", "server.workers", "an integer >= 1"),
])
def test_bad_engine_or_workers_in_the_config_file(tmp_path: Path, text: str, where: str,
                                                  allowed: str) -> None:
    path = _file(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_settings({}, path)

    [(found, message)] = caught.value.problems
    assert found == f"{path}: {where}"
    assert allowed in message


def test_bad_cli_workers_names_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"BRRTR_WORKERS": "2"}, workers=0)

    [(where, message)] = caught.value.problems
    assert where == "--workers"
    assert "0 is not valid; expected an integer >= 1" in message


def test_empty_variable_counts_as_unset() -> None:
    assert load_settings({"PORT": "", "BRRTR_HANDLER_WORKERS": " "}) == Settings()


def test_config_file_then_env_then_cli(tmp_path: Path) -> None:
    path = _file(tmp_path, """
server: {host: 10.0.0.1, port: 7000, max_connections: 20, keepalive_timeout_s: 1,
         max_body_bytes: 100, shutdown_grace_s: 4}
actors:
  defaults: {workers: 2, mailbox: 10, policy: shed, block_timeout_ms: 5, deadline_ms: 100}
  operations:
    get_pet: {workers: 9}
validation: {responses: off}
security:
  ApiKeyHeader: {key: from-file}
""")
    from_file = load_settings({}, path)
    from_env = load_settings({"PORT": "7001", "BRRTR_HANDLER_WORKERS": "3"}, path)
    from_cli = load_settings({"PORT": "7001", "BRRTR_HOST": "::1"}, path,
                             host="localhost", port=7002)

    assert (from_file.host, from_file.port, from_file.max_connections) == ("10.0.0.1", 7000, 20)
    assert (from_file.keepalive_timeout_s, from_file.max_body_bytes) == (1.0, 100)
    assert from_file.shutdown_grace_s == 4.0
    assert from_file.response_validation == "off"  # YAML's bare `off` is False
    assert from_file.actor_defaults == ActorSettings(2, 10, "shed", 5, 100)
    assert from_file.actor_operations == {"get_pet": {"workers": 9}}
    assert from_file.security == {"ApiKeyHeader": {"key": "from-file"}}
    assert from_file.config_file == path
    assert set(from_file.file) == {"server", "actors", "validation", "security"}
    assert (from_env.port, from_env.actor_defaults.workers) == (7001, 3)
    assert from_env.actor_defaults.mailbox == 10  # the rest still from the file
    assert (from_cli.host, from_cli.port) == ("localhost", 7002)


def test_empty_config_file_is_fine(tmp_path: Path) -> None:
    assert load_settings({}, _file(tmp_path, "")).actor_defaults == ActorSettings()


# -- bad values ----------------------------------------------------------------------------

@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("BRRTR_HANDLER_WORKERS", "four", "an integer from 1 to 1000"),
    ("BRRTR_HANDLER_WORKERS", "0", "an integer from 1 to 1000"),
    ("BRRTR_HANDLER_WORKERS", "1001", "an integer from 1 to 1000"),
    ("BRRTR_HANDLER_QUEUE_BOUND", "0", "an integer >= 1"),
    ("BRRTR_BACKPRESSURE_MODE", "drop", "one of block, shed"),
    ("BRRTR_BACKPRESSURE_TIMEOUT_MS", "-1", "an integer >= 0"),
    ("BRRTR_HANDLER_DEADLINE_MS", "1.5", "an integer >= 0"),
    ("BRRTR_MAX_CONNECTIONS", "0", "an integer >= 1"),
    ("BRRTR_KEEPALIVE_TIMEOUT_S", "-1", "a number >= 0"),
    ("BRRTR_MAX_BODY_BYTES", "1e9", "an integer >= 0"),
    ("PORT", "70000", "an integer from 0 to 65535"),
    ("BRRTR_RESPONSE_VALIDATION", "strict", "one of enforce, log, off"),
    ("BRRTR_SHUTDOWN_GRACE_S", "nan", "a number >= 0"),
    ("BRRTR_HTTP_ENGINE", "fast", "one of httptools, pywsgi"),
    ("BRRTR_WORKERS", "0", "an integer >= 1"),
    ("BRRTR_WORKERS", "two", "an integer >= 1"),
    ("BRRTR_HANDLER_WORKERS__get_pet", "-2", "an integer from 1 to 1000"),
])
def test_bad_value_names_the_variable_and_the_allowed_values(
        variable: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})

    [(where, message)] = caught.value.problems
    assert where == variable
    assert repr(value) in message
    assert allowed in message
    assert isinstance(caught.value, ValueError)


def test_bad_cli_port_names_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, port=-1)

    assert _wheres(caught.value) == ["--port"]


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    path = _file(tmp_path, """
server: {port: high, colour: blue}
actors:
  defaults: {workers: 0, stack: 1}
  operations:
    get_pet: {policy: maybe}
    add_pet: 3
validation: {responses: sometimes}
logging: {}
""")
    with pytest.raises(ConfigError) as caught:
        load_settings({"BRRTR_HANDLER_QUEUE_BOUND": "x", "BRRTR_BACKPRESSURE_MODE": "lifo",
                       "BRRTR_HANDLER_DEADLINE_MS__add_pet": "soon"}, path)

    wheres = _wheres(caught.value)
    assert sorted(wheres) == sorted([
        f"{path}: logging",
        f"{path}: server.colour",
        f"{path}: server.port",
        f"{path}: actors.defaults.stack",
        f"{path}: actors.defaults.workers",
        f"{path}: actors.operations.get_pet.policy",
        f"{path}: actors.operations.add_pet",
        f"{path}: validation.responses",
        "BRRTR_HANDLER_QUEUE_BOUND",
        "BRRTR_BACKPRESSURE_MODE",
        "BRRTR_HANDLER_DEADLINE_MS__add_pet",
    ])
    message = str(caught.value)
    assert message.startswith("11 problems:")
    assert ("unknown key; allowed: actors, compression, cors, http, rate_limit, security, "
            "server, validation") in message
    assert "one of block, shed" in message


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = _file(tmp_path, "actors: {defaults: {workerz: 2}}\n")

    with pytest.raises(ConfigError, match=r"actors\.defaults\.workerz: unknown key; allowed: "
                                          r"block_timeout_ms, deadline_ms, mailbox"):
        load_settings({}, path)


@pytest.mark.parametrize(("text", "message"), [
    ("server: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "must hold a mapping"),
    ("server: 8080\n", "server: must be a mapping"),
])
def test_malformed_config_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({}, _file(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")

    with pytest.raises(ConfigError, match="cannot read the config file") as caught:
        load_settings({}, missing)

    assert _wheres(caught.value) == [missing]


# -- per-operation precedence --------------------------------------------------------------

_FILE_OPS = """
actors:
  defaults: {workers: 2}
  operations:
    get_pet: {workers: 4}
"""


@pytest.mark.parametrize(("file_text", "env", "extensions", "expected"), [
    # built-in default
    ("", {}, {}, 4),
    # config file actors.defaults beats the default
    ("actors: {defaults: {workers: 2}}", {}, {}, 2),
    # global env beats actors.defaults
    ("actors: {defaults: {workers: 2}}", {"BRRTR_HANDLER_WORKERS": "3"}, {}, 3),
    # actors.operations.<id> beats global env
    (_FILE_OPS, {"BRRTR_HANDLER_WORKERS": "3"}, {}, 4),
    # per-operation env beats actors.operations.<id>
    (_FILE_OPS, {"BRRTR_HANDLER_WORKERS": "3", "BRRTR_HANDLER_WORKERS__get_pet": "5"}, {}, 5),
    # x-brrt-actor beats actors.operations.<id> and the global env
    (_FILE_OPS, {"BRRTR_HANDLER_WORKERS": "3"}, {"x-brrt-actor": {"workers": 6}}, 6),
    # the operator's per-operation env beats x-brrt-actor (the designer's default)
    (_FILE_OPS, {"BRRTR_HANDLER_WORKERS": "3", "BRRTR_HANDLER_WORKERS__get_pet": "5"},
     {"x-brrt-actor": {"workers": 6}}, 5),
])
def test_precedence_most_specific_wins(tmp_path: Path, file_text: str, env: dict[str, str],
                                       extensions: dict[str, Any], expected: int) -> None:
    settings = load_settings(env, _file(tmp_path, file_text))

    tuned = actor_settings_for(settings, _operation(**extensions))

    assert tuned.workers == expected
    assert dataclasses.replace(tuned, workers=4) == ActorSettings()  # nothing else moved


def _probe(operation_id: str = "health", path: str = "/health",
           **extensions: Any) -> Operation:
    return Operation(operation_id, "GET", path, f"/paths/{path.replace('/', '~1')}/get",
                     operation_id, extensions=extensions)


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_a_probe_operation_waits_for_room_whatever_the_global_policy(path: str) -> None:
    settings = load_settings({"BRRTR_BACKPRESSURE_MODE": "shed", "BRRTR_HANDLER_QUEUE_BOUND": "1",
                              "BRRTR_BACKPRESSURE_TIMEOUT_MS": "5",
                              "BRRTR_HANDLER_DEADLINE_MS": "2000"})

    probe = actor_settings_for(settings, _probe(path=path))
    other = actor_settings_for(settings, _operation())

    assert (probe.policy, probe.block_timeout_ms, probe.mailbox) == ("block", 2000, 1)
    assert (other.policy, other.block_timeout_ms) == ("shed", 5)
    no_deadline = load_settings({"BRRTR_HANDLER_DEADLINE_MS": "0"})
    assert actor_settings_for(no_deadline, _probe()).block_timeout_ms == 30000  # bounded


def test_a_probe_operation_keeps_what_it_is_given_itself() -> None:
    settings = load_settings({"BRRTR_BACKPRESSURE_MODE__health": "shed",
                              "BRRTR_BACKPRESSURE_TIMEOUT_MS": "5"})

    assert actor_settings_for(settings, _probe()).policy == "shed"
    spec = _probe(**{"x-brrt-actor": {"block_timeout_ms": 7}})
    assert actor_settings_for(settings, spec).block_timeout_ms == 7
    assert actor_settings_for(settings, _probe("status", "/status")).block_timeout_ms == 5


def test_gc_threshold_from_the_environment_or_the_config_file(tmp_path: Path) -> None:
    assert load_settings({}).gc_threshold == 10_000
    assert load_settings({"BRRTR_GC_THRESHOLD": "0"}).gc_threshold == 0
    path = _file(tmp_path, "server: {gc_threshold: 2500}")
    assert load_settings({}, path).gc_threshold == 2500
    assert load_settings({"BRRTR_GC_THRESHOLD": "700"}, path).gc_threshold == 700
    for bad in ("-1", "lots", "10000001"):
        with pytest.raises(ConfigError) as caught:
            load_settings({"BRRTR_GC_THRESHOLD": bad})
        assert _wheres(caught.value) == ["BRRTR_GC_THRESHOLD"]


def test_max_blocking_ms_from_the_environment_or_the_config_file(tmp_path: Path) -> None:
    assert load_settings({"BRRTR_MAX_BLOCKING_MS": "0"}).max_blocking_ms == 0
    path = _file(tmp_path, "server: {max_blocking_ms: 250}")
    assert load_settings({}, path).max_blocking_ms == 250
    assert load_settings({"BRRTR_MAX_BLOCKING_MS": "40"}, path).max_blocking_ms == 40
    with pytest.raises(ConfigError) as caught:
        load_settings({"BRRTR_MAX_BLOCKING_MS": "-1"})
    assert _wheres(caught.value) == ["BRRTR_MAX_BLOCKING_MS"]
    assert "an integer >= 0" in str(caught.value)


def test_other_operations_keep_the_global_values() -> None:
    settings = load_settings({"BRRTR_HANDLER_WORKERS": "3",
                              "BRRTR_HANDLER_WORKERS__get_pet": "5"})

    assert actor_settings_for(settings, _operation("add_pet")).workers == 3


def test_every_knob_has_its_per_operation_variable() -> None:
    settings = load_settings({
        "BRRTR_HANDLER_WORKERS__get_pet": "1",
        "BRRTR_HANDLER_QUEUE_BOUND__get_pet": "2",
        "BRRTR_BACKPRESSURE_MODE__get_pet": "shed",
        "BRRTR_BACKPRESSURE_TIMEOUT_MS__get_pet": "3",
        "BRRTR_HANDLER_DEADLINE_MS__get_pet": "0",
        "BRRTR_RETRY_AFTER_S__get_pet": "7",
    })

    assert actor_settings_for(settings, _operation()) == ActorSettings(1, 2, "shed", 3, 0, 7)


def test_deadline_precedence_with_brrtrouter_extension() -> None:
    settings = load_settings({"BRRTR_HANDLER_DEADLINE_MS": "100"})
    operator = load_settings({"BRRTR_HANDLER_DEADLINE_MS__get_pet": "50"})

    brrtrouter = _operation(**{"x-brrtrouter-deadline-ms": 200})
    both = _operation(**{"x-brrtrouter-deadline-ms": 200, "x-brrt-actor": {"deadline_ms": 300}})

    assert actor_settings_for(settings, _operation()).deadline_ms == 100
    assert actor_settings_for(settings, brrtrouter).deadline_ms == 200
    assert actor_settings_for(settings, both).deadline_ms == 300
    for operation in (_operation(), brrtrouter, both):
        assert actor_settings_for(operator, operation).deadline_ms == 50


@pytest.mark.parametrize(("operation_id", "variable"), [
    ("get_pet", "BRRTR_HANDLER_WORKERS__GET_PET"),
    ("getPet", "BRRTR_HANDLER_WORKERS__GETPET"),
    ("getPet", "BRRTR_HANDLER_WORKERS__getPet"),
    ("get-pet", "BRRTR_HANDLER_WORKERS__GET_PET"),
])
def test_suffix_as_written_or_upper_cased(operation_id: str, variable: str) -> None:
    settings = load_settings({variable: "7"})

    assert actor_settings_for(settings, _operation(operation_id)).workers == 7
    check_operation_env({variable: "7"}, [operation_id])  # known: no error


def test_env_suffix() -> None:
    assert env_suffix("get_pet") == "GET_PET"
    assert env_suffix("listPets.v2") == "LISTPETS_V2"


def test_both_spellings_with_different_values_is_an_error() -> None:
    settings = load_settings({"BRRTR_HANDLER_WORKERS__getPet": "2",
                              "BRRTR_HANDLER_WORKERS__GETPET": "3"})

    with pytest.raises(ConfigError, match="different values"):
        actor_settings_for(settings, _operation("getPet"))


def test_environ_argument_overrides_what_load_settings_found() -> None:
    settings = load_settings({"BRRTR_HANDLER_WORKERS__get_pet": "2"})

    tuned = actor_settings_for(settings, _operation(), {"BRRTR_HANDLER_WORKERS__get_pet": "9"})

    assert tuned.workers == 9


@pytest.mark.parametrize(("extensions", "pointer", "message"), [
    ({"x-brrt-actor": {"workers": 0}},
     "/paths/~1pets~1{id}/get/x-brrt-actor/workers", "an integer from 1 to 1000"),
    ({"x-brrt-actor": {"workers": 5000}},
     "/paths/~1pets~1{id}/get/x-brrt-actor/workers", "an integer from 1 to 1000"),
    ({"x-brrt-actor": {"policy": "fifo"}},
     "/paths/~1pets~1{id}/get/x-brrt-actor/policy", "one of block, shed"),
    ({"x-brrt-actor": {"threads": 2}},
     "/paths/~1pets~1{id}/get/x-brrt-actor/threads", "unknown key"),
    ({"x-brrt-actor": 4}, "/paths/~1pets~1{id}/get/x-brrt-actor", "must be a mapping"),
    ({"x-brrtrouter-deadline-ms": "soon"},
     "/paths/~1pets~1{id}/get/x-brrtrouter-deadline-ms", "an integer >= 0"),
])
def test_bad_spec_extension_names_the_pointer(extensions: dict[str, Any], pointer: str,
                                              message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        actor_settings_for(Settings(), _operation(**extensions))

    [(where, text)] = caught.value.problems
    assert where == pointer
    assert message in text


# -- operations that do not exist ----------------------------------------------------------

def test_per_operation_variable_for_an_unknown_operation() -> None:
    env = {"BRRTR_HANDLER_WORKERS__get_pets": "2", "BRRTR_HANDLER_DEADLINE_MS__nope": "5",
           "BRRTR_HANDLER_WORKERS__add_pet": "2", "BRRTR_API_KEY__ApiKeyHeader": "secret"}

    with pytest.raises(ConfigError) as caught:
        check_operation_env(env, ["get_pet", "add_pet"])

    assert _wheres(caught.value) == ["BRRTR_HANDLER_WORKERS__get_pets",
                                     "BRRTR_HANDLER_DEADLINE_MS__nope"]
    assert "did you mean 'get_pet'?" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_config_file_operation_that_does_not_exist(tmp_path: Path) -> None:
    path = _file(tmp_path, "actors: {operations: {get_pets: {workers: 1}}}\n")
    settings = load_settings({}, path)

    with pytest.raises(ConfigError) as caught:
        check_operation_env({}, ["get_pet"], settings=settings)

    assert _wheres(caught.value) == [f"{path}: actors.operations.get_pets"]


def test_resolve_actor_settings_lists_every_problem_of_every_operation() -> None:
    env = {"BRRTR_HANDLER_WORKERS__ghost": "1", "BRRTR_HANDLER_WORKERS__add_pet": "2"}
    settings = load_settings(env)
    operations = [_operation("get_pet", **{"x-brrt-actor": {"mailbox": 0}}),
                  _operation("add_pet", **{"x-brrt-actor": {"policy": "x"}})]

    with pytest.raises(ConfigError) as caught:
        resolve_actor_settings(settings, operations)

    assert len(caught.value.problems) == 3


def test_resolve_actor_settings_returns_every_operation() -> None:
    settings = load_settings({"BRRTR_HANDLER_WORKERS__add_pet": "2"})

    plan = resolve_actor_settings(settings, [_operation("get_pet"), _operation("add_pet")])

    assert plan.per_operation == {"get_pet": ActorSettings(), "add_pet": ActorSettings(workers=2)}
    assert plan.notes == ()


# -- stack sizes: accepted, reported, no effect --------------------------------------------

def test_stack_size_settings_are_reported_as_without_effect(
        caplog: pytest.LogCaptureFixture) -> None:
    env = {"BRRTR_STACK_SIZE": "0x8000", "BRRTR_STACK_SIZE__get_pet": "65536"}
    settings = load_settings(env)
    operation = _operation(**{"x-brrtrouter-stack-size": 16384})

    plan = resolve_actor_settings(settings, [operation])
    with caplog.at_level(logging.WARNING, logger="brrt_actors.config"):
        tuned = actor_settings_for(settings, operation)
        check_operation_env(env, ["get_pet"])

    assert tuned == ActorSettings()
    assert [where for where, _ in plan.notes] == [
        "BRRTR_STACK_SIZE", "BRRTR_STACK_SIZE__get_pet",
        "/paths/~1pets~1{id}/get/x-brrtrouter-stack-size"]
    assert all("no effect" in message for _, message in plan.notes)
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 3
    assert all("greenlets have no fixed stack size" in line for line in logged)


def test_stack_size_for_an_unknown_operation_is_an_error() -> None:
    with pytest.raises(ConfigError, match="BRRTR_STACK_SIZE__ghost"):
        check_operation_env({"BRRTR_STACK_SIZE__ghost": "1"}, ["get_pet"])


def test_notes_can_be_collected_instead_of_logged(caplog: pytest.LogCaptureFixture) -> None:
    notes: list[tuple[str, str]] = []
    operation = _operation(**{"x-brrtrouter-stack-size": 1})

    with caplog.at_level(logging.WARNING, logger="brrt_actors.config"):
        actor_settings_for(Settings(), operation, {}, notes=notes)
        check_operation_env({"BRRTR_STACK_SIZE": "1"}, ["get_pet"], notes=notes)

    assert len(notes) == 2
    assert caplog.records == []


def test_actor_knobs_match_actor_settings() -> None:
    assert set(knobs.ACTOR_KNOB_BY_NAME) == {f.name for f in dataclasses.fields(ActorSettings)}


def test_config_file_values_of_the_wrong_type(tmp_path: Path) -> None:
    path = _file(tmp_path, """
server: {host: "", keepalive_timeout_s: [1], shutdown_grace_s: soon, max_connections: true}
actors: {defaults: {workers: 2.5, deadline_ms: "250", policy: SHED}}
""")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, path)

    assert sorted(_wheres(caught.value)) == sorted(
        f"{path}: {key}" for key in ("server.host", "server.keepalive_timeout_s",
                                     "server.shutdown_grace_s", "server.max_connections",
                                     "actors.defaults.workers"))
    assert "a non-empty string" in str(caught.value)


def test_config_file_strings_are_parsed_like_variables(tmp_path: Path) -> None:
    path = _file(tmp_path, 'actors: {defaults: {deadline_ms: "250", policy: SHED}}\n')

    defaults = load_settings({}, path).actor_defaults

    assert (defaults.deadline_ms, defaults.policy) == (250, "shed")


def test_plan_says_where_each_value_came_from(tmp_path: Path) -> None:
    path = tmp_path / "brrt.yaml"
    path.write_text("actors:\n  defaults: {mailbox: 64}\n  operations:\n"
                    "    get_pet: {policy: shed}\n")
    settings = load_settings({"BRRTR_HANDLER_DEADLINE_MS": "900",
                              "BRRTR_HANDLER_WORKERS__get_pet": "5"}, str(path))
    operation = _operation(**{"x-brrt-actor": {"workers": 2, "retry_after_s": 3}})
    plan = resolve_actor_settings(settings, [operation])
    assert plan.per_operation["get_pet"] == ActorSettings(
        workers=5, mailbox=64, policy="shed", deadline_ms=900, retry_after_s=3)
    assert plan.sources["get_pet"] == {
        "workers": "env BRRTR_HANDLER_WORKERS__get_pet",
        "mailbox": "config file actors.defaults",
        "policy": "config file actors.operations.get_pet",
        "block_timeout_ms": "default",
        "deadline_ms": "env BRRTR_HANDLER_DEADLINE_MS",
        "retry_after_s": "spec /paths/~1pets~1{id}/get/x-brrt-actor",
    }
    assert plan.overrides == (("BRRTR_HANDLER_WORKERS__get_pet",
                               "5 overrides the spec's 2 for workers of 'get_pet' (the "
                               "operator's variable wins over x-brrt-actor)"),)


def test_an_env_value_that_overrides_the_spec_is_logged_at_start(
        caplog: pytest.LogCaptureFixture, tmp_path: Path, apps: list[object]) -> None:
    from brrt_actors import create_app

    spec = tmp_path / "api.yaml"
    spec.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /p:\n"
                    "    get:\n      operationId: get_p\n      x-brrt-actor: {workers: 2}\n"
                    "      responses: {'204': {description: none}}\n")
    with caplog.at_level(logging.INFO, logger="brrt_actors"):
        app = create_app(spec, {"get_p": lambda request: None},
                         environ={"BRRTR_HANDLER_WORKERS__GET_P": "6"})
    apps.append(app)
    assert app.actors["get_p"].settings.workers == 6
    assert ("BRRTR_HANDLER_WORKERS__GET_P: 6 overrides the spec's 2 for workers of 'get_p' "
            "(the operator's variable wins over x-brrt-actor)") in caplog.text
