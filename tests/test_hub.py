"""Loading the gated Hub dataset: offline behaviour and the error mapping against a fake Hub.

`huggingface_hub` reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported, so the loader runs in a
subprocess pointed at a `FakeHub` on 127.0.0.1. One subprocess runs all loader scenarios (the
fake Hub switches its repositories between them); the CLI checks run the real command.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakehub import DroppingServer, FakeHub, FakeRepo, jsonl
from helpers import make_dialogue

from kardiabench.data import DataError, load_dialogues
from kardiabench.data.load import is_hub_source

REPO = "Jhcircle/KardiaBench"
ALIAS = "Jhcircle/KadiaBench"
TOKEN = "hf_SeCrEtToKeN0123456789abcdef"  # a valid account whose access request is pending
APPROVED = "hf_ApPrOvEdToKeN0123456789abcd"
INVALID = "hf_InVaLiDtOkEn0123456789abcde"
SECRETS = (TOKEN, APPROVED, INVALID)
ROOT = Path(__file__).resolve().parents[1]


def data_bytes(users: list[str]) -> bytes:
    return jsonl(make_dialogue(u, 2, emotions=["anxious", "hopeful"]) for u in users).encode()


FILES = {"train.jsonl": data_bytes(["tr1", "tr2", "tr3"]), "test.jsonl": data_bytes(["te1", "te2"])}
RENAMED = {"data/test-00000-of-00001.jsonl": FILES["test.jsonl"], "README.md": b"# card"}

# name: (repositories the fake Hub holds, --data, split, HF_TOKEN)
SCENARIOS: dict[str, tuple[dict[str, FakeRepo], str, str, str | None]] = {
    "gated_anon": ({REPO: FakeRepo(dict(FILES), gated=True)}, REPO, "test", None),
    "forbidden": ({REPO: FakeRepo(dict(FILES), fail_status=403)}, REPO, "test", TOKEN),
    "server_error": ({REPO: FakeRepo(dict(FILES), fail_status=500)}, REPO, "test", None),
    "gated_pending": (
        {REPO: FakeRepo(dict(FILES), gated=True, approved_tokens={APPROVED})},
        REPO,
        "test",
        TOKEN,
    ),
    "invalid_token": (
        {REPO: FakeRepo(dict(FILES), gated=True, approved_tokens={APPROVED})},
        REPO,
        "test",
        INVALID,
    ),
    "missing_anon": ({}, REPO, "test", None),
    "missing_token": ({}, ALIAS, "test", TOKEN),
    "missing_other": ({}, "someone/else", "test", None),
    "alias_only": ({ALIAS: FakeRepo(dict(FILES))}, REPO, "test", None),
    "renamed": ({REPO: FakeRepo(dict(RENAMED))}, REPO, "test", None),
    "renamed_no_split": ({REPO: FakeRepo(dict(RENAMED))}, REPO, "validation", None),
    "ok_anon": ({REPO: FakeRepo(dict(FILES))}, REPO, "test", None),
    "ok_keyword": ({REPO: FakeRepo(dict(FILES))}, "hub", "train", None),
    "ok_hf_url": (
        {ALIAS: FakeRepo(dict(FILES))},
        "hf://datasets/Jhcircle/KadiaBench",
        "test",
        None,
    ),
    "ok_approved": (
        {REPO: FakeRepo(dict(FILES), gated=True, approved_tokens={APPROVED})},
        REPO,
        "train",
        APPROVED,
    ),
}

# Runs each scenario through load_dialogues and prints {name: result} as JSON.
RUNNER = textwrap.dedent(
    """
    import json, os, sys, traceback, urllib.request
    from kardiabench.data import DataError, load_dialogues
    out = {}
    for name, data, split, token in json.loads(sys.argv[1]):
        if "HF_ENDPOINT" in os.environ:
            urllib.request.urlopen(os.environ["HF_ENDPOINT"] + "/_fake/use/" + name).read()
        os.environ.pop("HF_TOKEN", None)
        if token:
            os.environ["HF_TOKEN"] = token
        try:
            r = load_dialogues(data, split)
            out[name] = {"ok": True, "split": r.split, "files": r.files,
                         "users": sorted(d.anon_username for d in r.dialogues)}
        except DataError as e:
            out[name] = {"ok": False, "error": str(e)}
        except Exception:
            out[name] = {"ok": False, "crash": traceback.format_exc()}
    print(json.dumps(out))
    """
)


def hub_env(
    home: Path, endpoint: str | None, token: str | None = None, offline: bool = False
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT")
    }
    env.update(
        HF_HOME=str(home),  # an empty cache and no stored token
        HF_HUB_OFFLINE="1" if offline else "0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        PYTHONPATH=str(ROOT),
    )
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_scenarios(env: dict[str, str], scenarios: list[list]) -> dict[str, dict]:
    p = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(scenarios)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout.strip().splitlines()[-1])
    for r in results.values():
        assert "crash" not in r, r["crash"]  # only DataError may come out of the loader
        assert_no_secret(json.dumps(r))
    assert_no_secret(p.stderr)
    return results


@pytest.fixture(scope="module")
def hub_runs(tmp_path_factory):
    """Every scenario's result, the fake Hub (with its request log) and the HF_HOME used."""
    home = tmp_path_factory.mktemp("hf-home")
    with FakeHub(
        valid_tokens={TOKEN, APPROVED}, scenarios={n: s[0] for n, s in SCENARIOS.items()}
    ) as hub:
        results = run_scenarios(
            hub_env(home, hub.url), [[n, d, sp, tok] for n, (_, d, sp, tok) in SCENARIOS.items()]
        )
    return results, hub, home


def assert_no_secret(*texts: str) -> None:
    for t in texts:
        for s in SECRETS:
            assert s not in t and s[3:15] not in t


def error_of(hub_runs, name: str) -> str:
    r = hub_runs[0][name]
    assert not r["ok"], r
    return r["error"]


# --------------------------------------------------------------------------- source detection, offline


def test_hub_ids_are_hub_sources(tmp_path, monkeypatch):
    assert is_hub_source(REPO) and is_hub_source(ALIAS) and is_hub_source("hub")
    assert is_hub_source("hf://datasets/Jhcircle/KardiaBench")
    monkeypatch.chdir(tmp_path)
    assert not is_hub_source("data/test.jsonl")  # a missing local file, not a Hub repository
    assert not is_hub_source("./missing")
    (tmp_path / "Jhcircle" / "KardiaBench").mkdir(parents=True)
    assert not is_hub_source(REPO)  # a local folder of that name wins


def test_offline_gives_clear_message_without_any_request(tmp_path):
    """HF_HUB_OFFLINE=1: not one request reaches the Hub, even one that holds the data."""
    holding = {
        "repo": {REPO: FakeRepo(dict(FILES))},
        "alias": {ALIAS: FakeRepo(dict(FILES))},
        "kw": {REPO: FakeRepo(dict(FILES))},
    }
    with FakeHub(scenarios=holding) as hub:
        env = hub_env(tmp_path, hub.url, offline=True)
        runs = run_scenarios(
            env,
            [
                ["repo", REPO, "test", TOKEN],
                ["alias", ALIAS, "train", None],
                ["kw", "hub", "test", None],
            ],
        )
    for r in runs.values():
        assert not r["ok"]
        assert (
            "cannot be reached" in r["error"]
            and "--data DIR" in r["error"]
            and "--data sample" in r["error"]
        )
    assert hub.requests == []


def test_offline_in_process_with_conftest_settings(monkeypatch):
    """tests/conftest.py sets HF_HUB_OFFLINE=1 before huggingface_hub is imported."""
    from huggingface_hub import constants

    if (
        not constants.HF_HUB_OFFLINE
        or Path(constants.HF_HUB_CACHE, "datasets--Jhcircle--KardiaBench").exists()
    ):
        pytest.skip("needs HF_HUB_OFFLINE=1 and no cached copy of the dataset")
    connects = []
    monkeypatch.setattr(socket.socket, "connect", lambda sock, addr: connects.append(addr))
    with pytest.raises(DataError, match="cannot be reached"):
        load_dialogues(REPO)
    assert connects == []  # offline: no connection was even tried


def test_unreachable_hub_online_fails_after_one_attempt_without_traceback(tmp_path):
    """A Hub that drops every connection: one request, no retries (the client's own retries would
    take ~25 s), then the offline message."""
    with DroppingServer() as server:
        env = hub_env(tmp_path, server.url)
        code = "from kardiabench.data import load_dialogues\nload_dialogues('Jhcircle/KardiaBench')"
        p = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    assert p.returncode != 0
    # not the HTTP client's ConnectError
    assert "DataError" in p.stderr and "cannot be reached" in p.stderr
    assert server.connections == 1


# --------------------------------------------------------------------------- fake Hub: errors


def test_gated_without_token_says_request_access_and_set_hf_token(hub_runs):
    msg = error_of(hub_runs, "gated_anon")
    assert "gated" in msg and "Request access" in msg and "HF_TOKEN" in msg
    assert "https://huggingface.co/datasets/Jhcircle/KardiaBench" in msg
    # the repo exists: no alias tried
    assert not any(ALIAS in p for p in hub_runs[1].paths("gated_anon"))
    assert not any(had for s, _, _, had in hub_runs[1].requests if s == "gated_anon")


def test_gated_with_unapproved_token_says_pending(hub_runs):
    msg = error_of(hub_runs, "gated_pending")
    assert "pending" in msg and "not approved" in msg and "HF_TOKEN" in msg
    assert all(had for s, _, _, had in hub_runs[1].requests if s == "gated_pending")


def test_invalid_token_is_refused(hub_runs):
    msg = error_of(hub_runs, "invalid_token")
    assert "401" in msg and "HF_TOKEN" in msg and "not authorised" in msg


@pytest.mark.parametrize("name", ["missing_anon", "missing_token"])
def test_repo_not_found_tries_alias_then_explains(hub_runs, name):
    msg = error_of(hub_runs, name)
    tried = " ".join(hub_runs[1].paths(name))
    assert REPO in tried and ALIAS in tried
    assert REPO in msg and ALIAS in msg and "no such dataset" in msg
    assert ("set HF_TOKEN" in msg) == (name == "missing_anon")


def test_forbidden_without_gate_code_names_the_status(hub_runs):
    msg = error_of(hub_runs, "forbidden")
    assert "403" in msg and "HF_TOKEN" in msg and "refused" in msg


def test_server_error_is_reported_without_retrying_for_long(hub_runs):
    msg = error_of(hub_runs, "server_error")
    assert "500" in msg and "Try again" in msg and "--data DIR" in msg
    assert len(hub_runs[1].paths("server_error")) <= 2


def test_other_repo_not_found_has_no_alias(hub_runs):
    msg = error_of(hub_runs, "missing_other")
    assert "someone/else" in msg and "Jhcircle" not in msg
    assert not any("Jhcircle" in p for p in hub_runs[1].paths("missing_other"))


def test_split_missing_from_repo_lists_its_files(hub_runs):
    msg = error_of(hub_runs, "renamed_no_split")
    assert "'validation'" in msg and "README.md" in msg and "data/test-00000-of-00001.jsonl" in msg


# --------------------------------------------------------------------------- fake Hub: downloads


def test_download_without_token_lands_in_the_hub_cache(hub_runs):
    r = hub_runs[0]["ok_anon"]
    assert r["ok"], r
    assert r["split"] == "test" and r["users"] == ["te1", "te2"]
    assert r["files"][0].startswith(str(hub_runs[2])) and r["files"][0].endswith("test.jsonl")


def test_gated_download_with_approved_token(hub_runs):
    r = hub_runs[0]["ok_approved"]
    assert r["ok"], r
    assert r["split"] == "train" and r["users"] == ["tr1", "tr2", "tr3"]
    assert all(had for s, _, _, had in hub_runs[1].requests if s == "ok_approved")


def test_hub_keyword_and_hf_url(hub_runs):
    kw, url = hub_runs[0]["ok_keyword"], hub_runs[0]["ok_hf_url"]
    assert kw["ok"] and kw["users"] == ["tr1", "tr2", "tr3"]
    assert all(REPO in p for p in hub_runs[1].paths("ok_keyword"))
    assert url["ok"] and url["users"] == ["te1", "te2"]
    assert all(ALIAS in p for p in hub_runs[1].paths("ok_hf_url"))


def test_alias_is_used_when_the_main_id_is_missing(hub_runs):
    r = hub_runs[0]["alias_only"]
    assert r["ok"] and r["users"] == ["te1", "te2"]
    assert "datasets--Jhcircle--KadiaBench" in r["files"][0]


def test_split_file_with_another_name_is_found_by_listing(hub_runs):
    r = hub_runs[0]["renamed"]
    assert r["ok"] and r["users"] == ["te1", "te2"]
    assert r["files"][0].endswith("test-00000-of-00001.jsonl")
    assert any("/tree/" in p for p in hub_runs[1].paths("renamed"))


# --------------------------------------------------------------------------- the CLI


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kardiabench.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_gated_error_on_stderr_without_traceback(tmp_path):
    with FakeHub({REPO: FakeRepo(dict(FILES), gated=True)}) as hub:
        p = run_cli(hub_env(tmp_path, hub.url, TOKEN), "data", "stats", "--data", REPO)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    assert "pending" in p.stderr and p.stdout == ""
    assert_no_secret(p.stderr, p.stdout)


def test_cli_stats_from_fake_hub(tmp_path):
    with FakeHub({REPO: FakeRepo(dict(FILES))}) as hub:
        p = run_cli(hub_env(tmp_path, hub.url), "data", "stats", "--data", REPO, "--json")
    assert p.returncode == 0, p.stderr
    stats = {s["split"]: s for s in json.loads(p.stdout)}
    assert set(stats) == {"train", "test"}
    assert (stats["train"]["dialogues"], stats["train"]["turns"]) == (3, 6)
    assert (stats["test"]["dialogues"], stats["test"]["turns"]) == (2, 4)


def test_cli_offline_error(tmp_path):
    p = run_cli(hub_env(tmp_path, None, TOKEN, offline=True), "data", "stats", "--data", REPO)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "cannot be reached" in p.stderr
    assert_no_secret(p.stderr, p.stdout)
