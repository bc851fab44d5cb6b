import json
import subprocess
import sys

from helpers import write_dataset

from kardiabench.cli import main


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "kardiabench.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_data_stats_sample_all_splits():
    r = cli("data", "stats", "--data", "sample", "--json")
    assert r.returncode == 0, r.stderr
    stats = {s["split"]: s for s in json.loads(r.stdout)}
    assert set(stats) == {"train", "test"}
    assert stats["test"]["dialogues"] >= 16 and stats["train"]["dialogues"] >= 40
    assert len(stats["test"]["emotions"]) == 32


def test_data_validate_reports_locations_and_fails(tmp_path, capsys):
    data = write_dataset(tmp_path / "d")
    rows = (data / "test.jsonl").read_text().splitlines()
    bad = json.loads(rows[1])
    del bad["mbti"]
    bad["messages"][2]["content"] = "no spans here"
    rows[1] = json.dumps(bad)
    (data / "test.jsonl").write_text("\n".join(rows) + "\n")
    assert main(["data", "validate", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert f"{data / 'test.jsonl'}:2: mbti: missing field" in out
    assert (
        f"{data / 'test.jsonl'}:2: messages[2].content: assistant turn without the four spans"
        in out
    )
    assert main(["data", "validate", "--data", str(data), "--split", "train"]) == 0


def test_strict_refuses_and_default_skips(tmp_path, capsys):
    data = write_dataset(tmp_path / "d")
    with (data / "test.jsonl").open("a") as fh:
        fh.write('{"person": "x"}\n')
    out = tmp_path / "run"
    code = main(
        [
            "generate",
            "--model",
            "baseline:majority",
            "--data",
            str(data),
            "--output",
            str(out),
            "--no-progress",
            "--no-cache",
            "--strict",
        ]
    )
    assert code == 2
    assert "strict" in capsys.readouterr().err
    code = main(
        [
            "generate",
            "--model",
            "baseline:majority",
            "--data",
            str(data),
            "--output",
            str(out),
            "--no-progress",
            "--no-cache",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "skipped 1 of 4 records" in err


def test_data_show_prints_turns():
    r = cli("data", "show", "--data", "sample", "--split", "test", "--index", "0")
    assert r.returncode == 0, r.stderr
    assert "[turn 0] user:" in r.stdout and "emotion:" in r.stdout


def test_unknown_source_is_a_clear_error():
    r = cli("data", "stats", "--data", "/nonexistent/folder")
    assert r.returncode == 2
    assert "no such file or folder" in r.stderr and "Traceback" not in r.stderr


def test_tasks_lists_builtin():
    r = cli("tasks")
    assert r.returncode == 0 and "kardiabench_emotion" in r.stdout


def test_data_synth_writes_a_valid_dataset(tmp_path):
    assert main(["data", "synth", "--dialogues", "40", "--out", str(tmp_path / "syn")]) == 0
    assert main(["data", "validate", "--data", str(tmp_path / "syn")]) == 0
    assert main(["data", "synth", "--dialogues", "1", "--out", str(tmp_path / "bad")]) == 2
