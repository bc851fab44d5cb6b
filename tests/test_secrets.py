"""Secrets and endpoints, through the CLI against the scripted server: credentials in a URL are
refused and never written, generator and judge read their keys from variables of their own, a
missing judge key stops a run before generation, and a dry run needs no key at all."""

import json
import sys

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.models.base import FatalModelError
from kardiabench.models.openai_api import OpenAIChatModel
from kardiabench.redact import has_userinfo, redact_argv, redact_url
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
PASSWORD = "hunter2-secret"


@pytest.fixture(autouse=True)
def no_ambient_endpoint(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def judge_reply(request):
    return json.dumps(dict.fromkeys(DIMS, 4))


def files_text(folder) -> str:
    return (
        "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
        if folder.exists()
        else ""
    )


def run_args(tmp_path, data, gen_url, judge_url, *extra):
    return [
        "run",
        "--model",
        "openai:gen-model",
        "--base-url",
        gen_url,
        "--data",
        str(data),
        "--output",
        str(tmp_path / "run"),
        "--judge",
        "openai:judge-model",
        "--judge-base-url",
        judge_url,
        "--no-progress",
        "--cache",
        str(tmp_path / "cache.sqlite"),
        "--resamples",
        "50",
        *extra,
    ]


# ----------------------------------------------------------------------------- the helper


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:pass@host:8000/v1", "http://***@host:8000/v1"),
        ("https://token@api.example.com/v1", "https://***@api.example.com/v1"),
        # a raw "@" in the password: masked to the last one
        ("http://user:p@ss@host/v1", "http://***@host/v1"),
        ("--base-url=http://u:p@h/v1", "--base-url=http://***@h/v1"),
        ("http://host/v1?to=a@b", "http://host/v1?to=a@b"),  # an "@" after the host is not userinfo
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("runs/gpt-4o", "runs/gpt-4o"),
        # credential-named query parameters: the value masked, the name and the other parameters kept
        ("http://h/v1?api-key=abc123", "http://h/v1?api-key=***"),
        (
            "https://h/v1?api-version=2024-06-01&key=abc",
            "https://h/v1?api-version=2024-06-01&key=***",
        ),
        ("https://h/v1?token=t0k&x=1#top", "https://h/v1?token=***&x=1#top"),
        (
            "http://h/v1?a=1&access_token=zz&API_KEY=yy",
            "http://h/v1?a=1&access_token=***&API_KEY=***",
        ),
        ("'http://h/v1?sig=s1&code=c2' failed", "'http://h/v1?sig=***&code=***' failed"),
        ("http://u:p@h/v1?apikey=k", "http://***@h/v1?apikey=***"),
    ],
)
def test_redact_url_masks_userinfo_and_credentials_in_the_query(text, shown):
    assert redact_url(text) == shown
    # only userinfo is refused; a query key is sent as given
    assert has_userinfo(text) == ("***@" in shown)


def test_redact_argv_masks_every_url_argument():
    argv = [
        "kardiabench",
        "run",
        "--data",
        "https://me:pw@example.com/d.jsonl",
        "--base-url=http://a:b@h/v1",
        "--limit",
        "3",
    ]
    assert redact_argv(argv) == [
        "kardiabench",
        "run",
        "--data",
        "https://***@example.com/d.jsonl",
        "--base-url=http://***@h/v1",
        "--limit",
        "3",
    ]


# ----------------------------------------------------------------------------- credentials in URLs


@pytest.mark.parametrize("where", ["--base-url", "--judge-base-url", "OPENAI_BASE_URL"])
def test_credentials_in_a_base_url_are_refused_and_written_nowhere(
    tmp_path, monkeypatch, capsys, where
):
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer() as srv:
        secret_url = f"http://user:{PASSWORD}@127.0.0.1:{srv.port}/v1"
        gen_url, judge_url = (
            (secret_url, srv.url) if where == "--base-url" else (srv.url, secret_url)
        )
        if where == "OPENAI_BASE_URL":
            monkeypatch.setenv("OPENAI_BASE_URL", secret_url)
            args = [
                a
                for a in run_args(tmp_path, data, gen_url, judge_url)
                if a not in ("--judge-base-url", secret_url)
            ]
        else:
            args = run_args(tmp_path, data, gen_url, judge_url)
        code = main(args)
        requests = srv.stats.requests
    out, err = capsys.readouterr()
    assert code == 2
    assert requests == 0  # refused before anything was sent, generation included
    assert (
        "credentials in the base URL" in err
        and "--api-key-env" in err
        and "http://***@127.0.0.1" in err
    )
    assert PASSWORD not in out + err + files_text(tmp_path / "run")
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_the_recorded_command_line_carries_no_credentials(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer() as srv:
        # --train-data is only read by baselines: a URL with credentials passes through to the record
        args = [
            "generate",
            "--model",
            "openai:m",
            "--base-url",
            srv.url,
            "--data",
            str(data),
            "--output",
            str(out),
            "--train-data",
            f"https://me:{PASSWORD}@example.com/train.jsonl",
            "--no-progress",
            "--no-cache",
        ]
        monkeypatch.setattr(sys, "argv", ["kardiabench", *args])
        assert main(args) == 0
    command = json.loads((out / "run.json").read_text())["command"]
    assert "https://***@example.com/train.jsonl" in command and command[1:3] == [
        "generate",
        "--model",
    ]
    assert PASSWORD not in files_text(out)


def test_a_key_in_a_base_url_query_is_sent_and_written_nowhere(tmp_path, monkeypatch, capsys):
    """Gateways that take the key as `?api-key=`: every request carries the query, and no file of
    the run, the cache or the console holds the key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer() as srv:
        gen_url, judge_url = (
            f"{srv.url}?api-key=GEN-{PASSWORD}",
            f"{srv.url}?key=JUDGE-{PASSWORD}&region=eu",
        )
        args = run_args(tmp_path, data, gen_url, judge_url)
        monkeypatch.setattr(sys, "argv", ["kardiabench", *args])
        code = main(args)
        queries = dict(srv.stats.queries)
    out, err = capsys.readouterr()
    assert code == 0, err
    # 9 items, generated and judged
    assert queries == {f"api-key=GEN-{PASSWORD}": 9, f"key=JUDGE-{PASSWORD}&region=eu": 9}
    command = json.loads((tmp_path / "run" / "run.json").read_text())["command"]
    assert f"{srv.url}?api-key=***" in command and f"{srv.url}?key=***&region=eu" in command
    assert PASSWORD not in out + err + files_text(tmp_path / "run")
    assert PASSWORD.encode() not in (tmp_path / "cache.sqlite").read_bytes()


def test_an_error_names_a_base_url_with_its_query_key_masked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig(api_key="sk-right")) as srv:
        # Both URLs carry the key: the judge's endpoint is probed first, before anything is generated.
        code = main(
            run_args(
                tmp_path, data, f"{srv.url}?api-key={PASSWORD}", f"{srv.url}?api-key={PASSWORD}"
            )
        )
    out, err = capsys.readouterr()
    assert code == 2
    assert f"authentication failed for {srv.url}?api-key=*** (HTTP 401)" in err
    assert PASSWORD not in out + err + files_text(tmp_path / "run")


# ----------------------------------------------------------------------------- one key each


def test_generator_and_judge_each_send_their_own_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEN_KEY", "sk-gen-aaaa")
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-bbbb")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with (
        FakeOpenAIServer(FakeConfig(api_key="sk-gen-aaaa")) as gen,
        FakeOpenAIServer(FakeConfig(api_key="sk-judge-bbbb", reply_fn=judge_reply)) as judge,
    ):
        code = main(
            run_args(
                tmp_path,
                data,
                gen.url,
                judge.url,
                "--api-key-env",
                "GEN_KEY",
                "--judge-api-key-env",
                "JUDGE_KEY",
            )
        )
        assert code == 0, capsys.readouterr().err
        assert dict(gen.stats.auth) == {"Bearer sk-gen-aaaa": 9}  # 3 test dialogues × 3 turns
        assert dict(judge.stats.auth) == {"Bearer sk-judge-bbbb": 9}
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["empathy"]["value"] == 4 and results["metrics"]["empathy"]["n"] == 9
    written = files_text(out) + "".join(capsys.readouterr())
    assert "sk-gen-aaaa" not in written and "sk-judge-bbbb" not in written


def test_a_rejected_key_names_its_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEN_KEY", "sk-wrong-cccc")
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig(api_key="sk-right-dddd")) as srv:
        code = main(
            [
                "generate",
                "--model",
                "openai:m",
                "--base-url",
                srv.url,
                "--api-key-env",
                "GEN_KEY",
                "--data",
                str(data),
                "--output",
                str(tmp_path / "run"),
                "--no-progress",
                "--no-cache",
                "--concurrency",
                "1",
            ]
        )
    err = capsys.readouterr().err
    assert code == 2
    assert "authentication failed" in err and "check GEN_KEY" in err
    assert "sk-wrong-cccc" not in err + files_text(tmp_path / "run")


def test_a_key_pasted_in_place_of_the_variable_name_is_refused_without_echo(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "generate",
                "--model",
                "openai:m",
                "--api-key-env",
                "sk-proj-eeee",
                "--output",
                str(tmp_path / "run"),
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert (
        "--api-key-env" in err
        and "NAME of an environment variable" in err
        and "sk-proj-eeee" not in err
    )


# ----------------------------------------------------------------------------- missing keys


@pytest.mark.parametrize(
    ("judge_flags", "variable"),
    [
        (["--judge-api-key-env", "JUDGE_KEY"], "JUDGE_KEY"),  # the default endpoint, api.openai.com
        # any endpoint not on this machine
        (["--judge-base-url", "https://api.deepseek.com/v1"], "OPENAI_API_KEY"),
    ],
)
def test_a_missing_judge_key_stops_the_run_before_generation(
    tmp_path, capsys, judge_flags, variable
):
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer() as gen:
        code = main(
            [
                "run",
                "--model",
                "openai:gen-model",
                "--base-url",
                gen.url,
                "--data",
                str(data),
                "--output",
                str(tmp_path / "run"),
                "--judge",
                "openai:gpt-5-mini",
                *judge_flags,
                "--no-progress",
                "--no-cache",
            ]
        )
        requests = gen.stats.requests
    err = capsys.readouterr().err
    assert code == 2
    assert requests == 0
    assert "no API key for openai:gpt-5-mini at " in err and f"set {variable}" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_a_key_is_needed_unless_the_server_is_on_this_machine_or_network():
    for url in (
        "http://127.0.0.1:9/v1",
        "http://localhost:9/v1",
        "http://[::1]:9/v1",
        "http://10.0.0.5:8000/v1",
    ):
        assert OpenAIChatModel("m", base_url=url)._api_key == "EMPTY"
    for url in ("https://api.openai.com/v1", "https://api.deepseek.com/v1", "http://8.8.8.8/v1"):
        with pytest.raises(FatalModelError, match="set OPENAI_API_KEY"):
            OpenAIChatModel("m", base_url=url)


def test_dry_run_needs_no_key(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    code = main(
        [
            "run",
            "--dry-run",
            "--model",
            "openai:gpt-4o",
            "--judge",
            "openai:gpt-5-mini",
            "--data",
            str(data),
            "--output",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "dry run for openai:gpt-4o: nothing was sent" in out
    assert "items                     9 (9 still to request" in out
    assert "judge openai:gpt-5-mini" in out and "9 calls" in out
