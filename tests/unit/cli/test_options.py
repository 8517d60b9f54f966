"""Every option of every subcommand: help text with its default and variable, and a wrong value — on the command
line or in the variable — is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from emulator.cli.main import _parser, main

SUBCOMMANDS = ("serve", "validate", "init", "journal", "record", "report")


def options_of(command: str) -> list[argparse.Action]:
    parser = _parser()[1][command]
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def test_every_subcommand_is_there() -> None:
    assert set(_parser()[1]) == set(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_has_help_a_default_and_a_variable(command: str) -> None:
    parser = _parser()[1][command]
    shown = "".join(parser.format_help().split())  # argparse wraps lines (and breaks at hyphens): no spaces
    for action in options_of(command):
        flag = action.option_strings[-1]
        assert action.help and action.help != argparse.SUPPRESS, flag
        match = re.search(r"\(default: (.+); env (TOKENHUB_EMULATOR_[A-Z_]+)\)$", action.help)
        assert match, f"{command} {flag}: {action.help!r}"
        assert "".join(action.help.split()) in shown
    for action in parser._actions:
        if not action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.dest}"


def test_the_variable_of_each_serve_option_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from emulator.cli.main import parse

    monkeypatch.setenv("TOKENHUB_EMULATOR_PORT", "9123")
    monkeypatch.setenv("TOKENHUB_EMULATOR_LOG_FORMAT", "JSON")
    monkeypatch.setenv("TOKENHUB_EMULATOR_WATCH", "yes")
    monkeypatch.setenv("TOKENHUB_EMULATOR_API_KEYS", "sk-a, sk-b")
    monkeypatch.setenv("TOKENHUB_EMULATOR_SCENARIO", f"{tmp_path}/a.yaml:{tmp_path}/b")
    args = parse(["serve", "--port", "9200"])  # the flag wins over the variable
    assert (args.port, args.log_format, args.watch, args.api_key) == (9200, "json", True, ["sk-a", "sk-b"])
    assert args.scenario == [tmp_path / "a.yaml", tmp_path / "b"]
    assert parse(["journal"]).url == "http://127.0.0.1:8000"


BAD_VALUES: list[tuple[list[str], dict[str, str], str]] = [
    (["serve", "--port", "99999"], {}, "--port: expected a port from 0 to 65535, got 99999"),
    (["serve", "--port", "-1"], {}, "expected a port from 0 to 65535"),
    (["serve", "--port", "http"], {}, "expected a port from 0 to 65535, got 'http'"),
    (["serve"], {"TOKENHUB_EMULATOR_PORT": "eighty"}, "TOKENHUB_EMULATOR_PORT (for --port): expected a port"),
    (["serve", "--max-body-bytes", "-1"], {}, "--max-body-bytes: expected a number of bytes of at least 1, got -1"),
    (["serve", "--max-body-bytes", "0"], {}, "of at least 1"),
    (["serve", "--seed", "-3"], {}, "--seed: expected an integer from 0 to"),
    (["serve", "--seed", "1.5"], {}, "--seed: expected an integer"),
    (["serve", "--host", "a b"], {}, "--host: expected a host name or an IP address"),
    (["serve", "--host", ""], {}, "--host: expected a host name or an IP address"),
    (["serve", "--scenario", ""], {}, "--scenario: expected a file or folder"),
    (["serve", "--log-level", "loud"], {}, "--log-level: expected one of critical, error, warning, info"),
    (["serve", "--log-format", "xml"], {}, "--log-format: expected one of text, json, got 'xml'"),
    (["serve", "--fallback", "guess"], {}, "--fallback: expected one of generate, error"),
    (["serve", "--profile", "acme"], {}, "--profile: expected one of anthropic, cloudbase"),
    (["serve", "--api-key", ""], {}, "--api-key: expected an API key"),
    (["serve", "--control-token", "two words"], {}, "--control-token: expected a token"),
    (["serve"], {"TOKENHUB_EMULATOR_WATCH": "maybe"}, "TOKENHUB_EMULATOR_WATCH (for --watch): expected 1/true/yes"),
    (["serve", "--ttft-ms", "-1"], {}, "--ttft-ms (or TOKENHUB_EMULATOR_TTFT_MS)"),
    (["serve", "--chunk-delay-ms", "soon"], {}, "--chunk-delay-ms (or TOKENHUB_EMULATOR_CHUNK_DELAY_MS)"),
    (["serve", "--tokens-per-second", "-4"], {}, "--tokens-per-second (or TOKENHUB_EMULATOR_TOKENS_PER_SECOND)"),
    (["serve", "--jitter", "wobbly"], {}, "--jitter (or TOKENHUB_EMULATOR_JITTER): expected uniform(low, high)"),
    (["serve", "--chunk-size", "big"], {}, "--chunk-size (or TOKENHUB_EMULATOR_CHUNK_SIZE)"),
    (["serve", "--latency-ms", "-5"], {}, "--latency-ms (or TOKENHUB_EMULATOR_LATENCY_MS)"),
    (["serve", "--rate-limit-requests", "0"], {}, "--rate-limit-requests (or TOKENHUB_EMULATOR_RATE_LIMIT_REQUESTS)"),
    (["serve", "--rate-limit-tokens", "lots"], {}, "expected a positive integer, got 'lots'"),
    (["serve", "--rate-limit-window-s", "0"], {}, "expected a number of seconds above 0"),
    (["serve", "--rate-limit-concurrency", "-2"], {}, "expected a positive integer"),
    (["serve", "--rate-limit-per", "user"], {}, "--rate-limit-per (or TOKENHUB_EMULATOR_RATE_LIMIT_PER)"),
    (["serve", "--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    (
        ["record", "--upstream", "gateway.example.com", "--out", "x.yaml"],
        {},
        "did you mean http://gateway.example.com?",
    ),
    (
        ["record", "--upstream", "ftp://gateway.example.com", "--out", "x.yaml"],
        {},
        "expected an http:// or https:// URL",
    ),
    (["record", "--upstream", "http://gateway.example.com:99999", "--out", "x.yaml"], {}, "is not a number from 0"),
    (["record", "--upstream", "http://gateway.example.com"], {}, "--out FILE is required"),
    (["record", "--out", "no/such/folder/x.yaml"], {}, "--out: no folder no/such/folder to write x.yaml in"),
    (["record", "--out", "x.yaml", "--mode", "sometimes"], {}, "--mode: expected one of once, new, replay"),
    (["record", "--out", "x.yaml", "--port", "70000"], {}, "--port: expected a port from 0 to 65535"),
    (["record", "--out", "x.yaml", "--upstream-key-env", "1BAD"], {}, "expected an environment variable name"),
    (["record", "--out", "x.yaml", "--upstream-key-env", "TOKENHUB_TEST_UNSET"], {}, "TOKENHUB_TEST_UNSET is not set"),
    (["report", "--url", "localhost:8000"], {}, "--url: expected an http:// or https:// URL"),
    (["report"], {"TOKENHUB_EMULATOR_URL": "emulator:8000"}, "TOKENHUB_EMULATOR_URL (for --url): expected an http"),
    (["journal", "--limit", "0"], {}, "--limit: expected an integer from 1 to"),
    (["journal", "--request-id", "a b"], {}, "--request-id: expected a request id"),
    (["journal", "--test-id", ""], {}, "--test-id: expected a test id"),
    (["validate"], {}, "the following arguments are required: PATH"),
    (["init", "here", "there"], {}, "unrecognized arguments: there"),
]


@pytest.mark.parametrize(("argv", "env", "says"), BAD_VALUES, ids=[" ".join(a) + str(e) for a, e, _ in BAD_VALUES])
def test_a_wrong_value_is_one_line_and_exit_2(
    argv: list[str], env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("TOKENHUB_EMULATOR_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert says in err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.match(rf"tokenhub-emulator( {argv[0]})?: error: ", err), err


def test_init_into_a_file_is_refused(tmp_path: Path, capsys) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["init", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
