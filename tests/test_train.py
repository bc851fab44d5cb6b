"""Training end to end on the tiny model, offline: configs and overrides, SFT loss masking, SFT and
GRPO checkpoints (GRPO with all three rewards, the judge on the scripted server), the checkpoint
evaluated by `kardiabench run`, and the distributed path under `accelerate launch` (2 CPU processes)."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kardiabench.cli import main
from kardiabench.spans import render_spans
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

pytest.importorskip("trl")
pytest.importorskip("peft")

REPO = Path(__file__).resolve().parents[1]
FAST_SFT = ["--set", "max_steps=2", "--set", "per_device_train_batch_size=2", "--set", "limit=8"]
FAST_GRPO = [
    "--set",
    "max_steps=2",
    "--set",
    "per_device_train_batch_size=2",
    "--set",
    "num_generations=2",
    "--set",
    "max_completion_length=16",
    "--set",
    "limit=8",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with its own kardiabench cache (the tiny model is built there)."""
    folder = tmp_path_factory.mktemp("train")
    mp = pytest.MonkeyPatch()
    mp.setenv("KARDIABENCH_CACHE", str(folder / "cache" / "cache.sqlite"))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def sft_dir(workdir):
    out = workdir / "sft"
    assert (
        main(["train", "sft", "--config", "sft-tiny.yaml", "--output-dir", str(out), *FAST_SFT])
        == 0
    )
    return out


def test_sft_writes_a_checkpoint_with_a_model_card(sft_dir):
    assert (sft_dir / "model.safetensors").is_file() and (sft_dir / "tokenizer.json").is_file()
    card = (sft_dir / "README.md").read_text()
    assert "Base model: `tiny`" in card and "split `train`" in card and "max_steps: 2" in card
    record = json.loads((sft_dir / "kardiabench_training.json").read_text())
    assert record["n_train"] == 8 and record["world_size"] == 1
    assert record["config"]["stage"] == "sft" and record["config"]["learning_rate"] == 1e-3
    # the loss curve, logged each step
    assert [h["step"] for h in record["log_history"] if "loss" in h] == [1, 2]


def test_checkpoint_is_evaluated_by_kardiabench_run(sft_dir, workdir):
    out = workdir / "run-sft"
    code = main(
        [
            "run",
            "--model",
            f"hf:{sft_dir}",
            "--data",
            "sample",
            "--limit",
            "4",
            "--output",
            str(out),
            "--max-tokens",
            "16",
            "--no-cache",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    preds = (out / "predictions.jsonl").read_text().splitlines()
    assert len(preds) == 4 and all(json.loads(p)["error"] is None for p in preds)
    assert (out / "results.json").is_file()


def test_sft_loss_is_on_the_assistant_turn_only(workdir):
    from kardiabench.train import load_config
    from kardiabench.train.data import load_items, target_text
    from kardiabench.train.sft import build_sft_trainer

    cfg = load_config("sft-tiny.yaml", "sft", ["limit=3"], str(workdir / "unused"))
    trainer, _ = build_sft_trainer(cfg)
    batch = trainer.data_collator([trainer.train_dataset[1]])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    trained = labels != -100
    assert 0 < int(trained.sum()) < len(ids)
    assert bool((labels[trained] == ids[trained]).all())
    first = int(trained.nonzero()[0])
    assert not bool(trained[:first].any()) and bool(trained[first:].all())  # one block at the end
    tok = trainer.processing_class
    item = load_items(cfg)[0][1]
    assert tok.decode(ids[trained]) == target_text(item) + tok.eos_token + "\n"
    # markers are single tokens
    assert tok.convert_tokens_to_ids("<|emotion_begin|>") in ids[trained].tolist()


def test_config_overrides_and_errors(tmp_path):
    from kardiabench.train import TrainConfigError, load_config
    from kardiabench.train.config import build_trl_args

    cfg = load_config(
        "grpo-tiny.yaml",
        "grpo",
        [
            "learning_rate=3e-5",
            "reward_weights.rubric=0.5",
            "judge=openai:j",
            "lora.r=4",
            "keep_hardest=0.25",
        ],
        str(tmp_path / "o"),
    )
    assert (
        cfg.trl["learning_rate"] == 3e-5
        and cfg.output_dir == str(tmp_path / "o")
        and cfg.lora == {"r": 4}
    )
    assert cfg.rewards() == ["format", "emotion", "rubric"] and cfg.weights()[2] == 0.5
    args = build_trl_args(cfg)
    assert (
        args.learning_rate == 3e-5
        and args.reward_weights == cfg.weights()
        and args.num_generations == 4
    )
    # no judge, no rubric
    assert load_config("grpo-tiny.yaml", "grpo").rewards() == ["format", "emotion"]
    with pytest.raises(TrainConfigError, match="no_such_field"):
        load_config("sft-tiny.yaml", "sft", ["no_such_field=1"])
    with pytest.raises(TrainConfigError, match="judge: a GRPO field"):
        load_config("sft-tiny.yaml", "sft", ["judge=openai:x"])
    with pytest.raises(TrainConfigError, match="global_batch_size"):
        build_trl_args(load_config("sft-tiny.yaml", "sft", ["global_batch_size=6"]))  # 6 % 4 != 0
    assert (
        build_trl_args(
            load_config("sft-tiny.yaml", "sft", ["global_batch_size=16"])
        ).gradient_accumulation_steps
        == 4
    )


def test_the_recorded_config_masks_a_key_in_the_judge_url(tmp_path):
    """kardiabench_training.json and the model card hold `to_dict()`: a key in the judge URL's query
    is used by the reward, never recorded with the checkpoint."""
    from kardiabench.train import load_config
    from kardiabench.train.model import model_card

    url = "http://127.0.0.1:8000/v1?api-key=SECRET-K9&region=eu"
    cfg = load_config(
        "grpo-tiny.yaml", "grpo", ["judge=openai:j", f"judge_base_url={url}"], str(tmp_path / "o")
    )
    assert cfg.judge_base_url == url  # the reward's judge is sent the key
    assert cfg.to_dict()["judge_base_url"] == "http://127.0.0.1:8000/v1?api-key=***&region=eu"
    assert "SECRET-K9" not in json.dumps(cfg.to_dict()) + model_card(cfg, {})


BAD_VALUES = [
    ("sft", ["learning_rate=-1"], "learning_rate: must be a number > 0, got -1"),
    ("sft", ["learning_rate=.nan"], "learning_rate: must be a number > 0, got nan"),
    ("sft", ["max_steps=abc"], "max_steps: must be -1 (no limit) or an integer ≥ 1, got 'abc'"),
    ("sft", ["max_steps=0"], "max_steps: must be -1 (no limit) or an integer ≥ 1, got 0"),
    (
        "sft",
        ["per_device_train_batch_size=0"],
        "per_device_train_batch_size: must be an integer from 1 to 4096, got 0",
    ),
    (
        "sft",
        ["gradient_accumulation_steps=2.5"],
        "gradient_accumulation_steps: must be an integer ≥ 1, got 2.5",
    ),
    ("sft", ["warmup_steps=-0.1"], "warmup_steps: must be a number ≥ 0, got -0.1"),
    ("sft", ["lora.r=abc"], "lora.r: must be an integer ≥ 1, got 'abc'"),
    ("sft", ["lora.lora_dropout=1.5"], "lora.lora_dropout: must be a number in [0, 1), got 1.5"),
    ("sft", ["lora.rank=8"], "lora.rank: not a field of peft's LoraConfig"),
    ("sft", ["lora.use_dora=1"], "lora.use_dora: expected true or false, got 1"),
    ("sft", ["limit=true"], "limit: must be an integer ≥ 1, got True"),
    ("sft", ["eval_limit=0"], "eval_limit: must be an integer ≥ 1, got 0"),
    (
        "sft",
        ["eval_fraction=1"],
        "eval_fraction: must be a fraction strictly between 0 and 1, got 1",
    ),
    ("sft", ["global_batch_size=false"], "global_batch_size: must be an integer ≥ 1, got False"),
    ("sft", ["bf16=1"], "bf16: expected true or false or null, got 1"),  # bool, not int
    ("sft", ["seed=1.5"], "seed: expected an integer, got 1.5"),
    ("sft", ["save_strategy=5"], "save_strategy: expected text, got 5"),
    ("sft", ["model=123"], "model: expected text, got 123"),
    (
        "grpo",
        ["reward_weights.format=0", "reward_weights.emotion=0"],
        "reward_weights: the rewards in use (format, emotion) all have weight 0",
    ),
    (
        "grpo",
        ["reward_weights={format: 0, emotion: 0, rubric: 0}", "judge=openai:j"],
        "the rewards in use (format, emotion, rubric) all have weight 0",
    ),
    ("grpo", ["reward_weights.rubric=-1"], "reward_weights.rubric: must be a number ≥ 0, got -1"),
    (
        "grpo",
        ["reward_weights.format=true"],
        "reward_weights.format: must be a number ≥ 0, got True",
    ),
    ("grpo", ["num_generations=1"], "num_generations: must be an integer ≥ 2, got 1"),
    ("grpo", ["temperature=0"], "temperature: must be a number > 0, got 0"),
    (
        "grpo",
        ["judge_concurrency=99999"],
        "judge_concurrency: must be an integer from 1 to 1024, got 99999",
    ),
    ("grpo", ["judge=gpt-5-mini"], "judge: model spec 'gpt-5-mini' must be one of openai:NAME"),
    ("grpo", ["keep_hardest=0"], "keep_hardest: must be a number in (0, 1], got 0"),
    (
        "grpo",
        ["difficulty_samples=true"],
        "difficulty_samples: must be an integer from 1 to 100, got True",
    ),
]


@pytest.mark.parametrize(
    ("stage", "sets", "message"), BAD_VALUES, ids=[" ".join(s) for _, s, _ in BAD_VALUES]
)
def test_every_bad_value_is_refused_before_training(stage, sets, message):
    """Issue 16: these ended in TRL/peft/torch tracebacks after the model loaded, or (limit=true,
    all-zero reward weights, a negative learning rate) were accepted. Now load_config, which
    loads no model, refuses each, naming the file and the field."""
    from kardiabench.train import TrainConfigError, load_config

    with pytest.raises(TrainConfigError) as exc:
        load_config(f"{stage}-tiny.yaml", stage, sets)
    assert str(exc.value).startswith(
        f"{REPO / 'kardiabench' / 'resources' / 'train' / f'{stage}-tiny.yaml'}: "
    )
    assert message in str(exc.value)


def test_good_values_still_pass():
    from kardiabench.train import load_config

    cfg = load_config(
        "sft-tiny.yaml",
        "sft",
        [
            "warmup_steps=0.03",
            "lora={r: 64, lora_alpha: 128, target_modules: all-linear}",
            "bf16=true",
            "eval_steps=null",
            "report_to=[tensorboard]",
            "max_length=null",
            "limit=4",
            "eval_fraction=0.25",
            "max_steps=-1",
        ],
    )
    assert cfg.lora["r"] == 64 and cfg.trl["warmup_steps"] == 0.03 and cfg.limit == 4
    cfg = load_config(
        "grpo-tiny.yaml",
        "grpo",
        [
            "reward_weights.format=0",
            "reward_weights.emotion=0",
            "reward_weights.rubric=1",
            "judge=openai:j",
            "keep_hardest=1",
        ],
    )
    assert cfg.weights() == [0.0, 0.0, 1.0]


def test_cli_bad_trl_value_is_one_line_naming_file_and_field(tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(f"model: tiny\noutput_dir: {tmp_path / 'out'}\nmax_steps: abc\n")
    assert main(["train", "sft", "--config", str(cfg)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {cfg}: max_steps: must be -1 (no limit) or an integer ≥ 1, got 'abc'\n"
    )
    assert (
        main(
            [
                "train",
                "grpo",
                "--config",
                "grpo-tiny.yaml",
                "--set",
                "lora.r=abc",
                "--output-dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.splitlines() == [
        f"error: {REPO / 'kardiabench/resources/train/grpo-tiny.yaml'}: lora.r: must be an integer ≥ 1, got 'abc'"
    ]
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_cli_config_error_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\noutput_dir: x\nlearning_rat: 1\n")
    assert main(["train", "sft", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: learning_rat:") and "Traceback" not in err
    assert main(["train", "sft", "--config", "nope.yaml"]) == 2
    assert (
        main(
            ["train", "sft", "--config", "sft-tiny.yaml", "--set", f"model={tmp_path / 'missing'}"]
        )
        == 2
    )
    assert "No model folder at" in capsys.readouterr().err


def test_shipped_configs_parse():
    import yaml

    from kardiabench.train import load_config
    from kardiabench.train.config import SHIPPED

    sft = load_config("sft-qwen2.5-7b.yaml", "sft")
    assert (sft.trl["num_train_epochs"], sft.trl["learning_rate"], sft.global_batch_size) == (
        2,
        1e-4,
        128,
    )
    grpo = load_config("grpo-qwen2.5-7b.yaml", "grpo")
    assert (
        grpo.trl["num_train_epochs"],
        grpo.trl["learning_rate"],
        grpo.global_batch_size,
        grpo.trl["num_generations"],
    ) == (2, 1e-6, 32, 8)
    assert (
        grpo.trl["load_best_model_at_end"]
        and grpo.judge
        and grpo.rewards() == ["format", "emotion", "rubric"]
    )
    for name in ("zero2.yaml", "zero3.yaml"):
        assert (
            yaml.safe_load((SHIPPED / "accelerate" / name).read_text())["distributed_type"]
            == "DEEPSPEED"
        )


def test_grpo_two_steps_with_all_three_rewards(sft_dir, workdir, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-local")
    out = workdir / "grpo"
    with FakeOpenAIServer(FakeConfig()) as srv:
        code = main(
            [
                "train",
                "grpo",
                "--config",
                "grpo-tiny.yaml",
                "--output-dir",
                str(out),
                "--set",
                f"model={sft_dir}",
                "--set",
                "judge=openai:judge",
                "--set",
                f"judge_base_url={srv.url}",
                "--set",
                "judge_api_key_env=JUDGE_KEY",
                *FAST_GRPO,
            ]
        )
        assert code == 0
    record = json.loads((out / "kardiabench_training.json").read_text())
    steps = [h for h in record["log_history"] if "rewards/format_reward/mean" in h]
    assert len(steps) == 2  # each component logged at each step
    assert all(
        f"rewards/{name}/mean" in h for h in steps for name in ("emotion_reward", "rubric_reward")
    )
    stats = record["rubric_reward_stats"]
    # two steps of two completions, each one judged or counted unscored
    assert stats["completions"] == 2 * 2
    assert stats.get("scored", 0) + stats.get("unscored", 0) == 4
    assert stats.get("scored", 0) == srv.stats.requests  # the fake judge always answers validly
    assert (
        record["rewards"] == ["format", "emotion", "rubric"]
        and record["training_judge"] == "openai:judge"
    )
    card = (out / "README.md").read_text()
    assert "Training judge: `openai:judge`" in card and "rubric × 0.333 (its rubric judge" in card
    assert (out / "model.safetensors").is_file()


def test_rewards_read_span_markers_from_completion_ids(sft_dir, monkeypatch):
    """TRL decodes completions without special tokens; the rewards re-decode the ids keeping the
    markers, so a well-formed completion scores (format 1, emotion 1, rubric from the judge)."""
    from transformers import AutoTokenizer

    from kardiabench.data import expand, load_dialogues
    from kardiabench.rewards import emotion_reward, format_reward, rubric_reward
    from kardiabench.train.grpo import keep_span_markers

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    tok = AutoTokenizer.from_pretrained(sft_dir)
    item = next(expand(load_dialogues("sample", "train").dialogues))
    text = render_spans(
        {
            "understanding": "u",
            "reasoning": "r",
            "emotion": item.gold_emotion,
            "response": "I am here.",
        }
    )
    ids = tok(text + tok.eos_token, add_special_tokens=False)["input_ids"]
    stripped = [[{"role": "assistant", "content": tok.decode(ids, skip_special_tokens=True)}]]
    columns = {k: [v] for k, v in item.to_dict().items()}
    assert format_reward(stripped) == [0.0]  # what TRL alone would hand the reward
    assert keep_span_markers(format_reward, tok)(stripped, completion_ids=[ids]) == [1.0]
    assert keep_span_markers(emotion_reward, tok)(stripped, completion_ids=[ids], **columns) == [
        1.0
    ]
    with FakeOpenAIServer(FakeConfig()) as srv:
        rubric = keep_span_markers(
            rubric_reward("openai:judge", base_url=srv.url, cache=False), tok
        )
        assert rubric.__name__ == "rubric_reward"
        value = asyncio.run(rubric(stripped, completion_ids=[ids], **columns))[0]
        assert srv.stats.requests == 1
    assert value is not None and 0.0 <= value <= 1.0


def test_difficulty_split_keeps_the_hardest_fraction(sft_dir, workdir):
    from kardiabench.train import load_config
    from kardiabench.train.data import load_items
    from kardiabench.train.grpo import hardest

    cfg = load_config(
        "grpo-tiny.yaml",
        "grpo",
        ["limit=6", "keep_hardest=0.5", "difficulty_samples=2"],
        str(workdir / "x"),
    )
    items, _, task = load_items(cfg)
    kept, mean = hardest(items, task, str(sft_dir), cfg, max_tokens=8)
    assert len(kept) == 3 and set(mean) == {it.item_id for it in items}
    assert max(mean[it.item_id] for it in kept) <= min(
        mean[it.item_id] for it in items if it not in kept
    )
    # data order kept
    assert [it.item_id for it in kept] == [it.item_id for it in items if it in kept]


@pytest.mark.slow
def test_grpo_under_accelerate_launch_two_cpu_processes(workdir):
    out = workdir / "dist"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KARDIABENCH_CACHE": str(workdir / "cache" / "cache.sqlite"),
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "kardiabench.cli",
        "train",
        "grpo",
        "--config",
        "grpo-tiny.yaml",
        "--set",
        "model=tiny",
        "--output-dir",
        str(out),
        *FAST_GRPO,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "kardiabench_training.json").read_text())
    assert record["world_size"] == 2 and record["distributed_type"] == "MULTI_CPU"  # gloo
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    assert not list(out.glob("checkpoint-*"))


def test_eval_fraction_holds_out_whole_personas(tmp_path):
    from kardiabench.train import load_config
    from kardiabench.train.data import grpo_rows, load_items

    cfg = load_config("grpo-tiny.yaml", "grpo", ["eval_fraction=0.25"], str(tmp_path / "o"))
    train, held_out, task = load_items(cfg)
    assert train and held_out
    assert not {it.persona_id for it in train} & {it.persona_id for it in held_out}
    row = grpo_rows(held_out[:1], task)[0]
    assert (
        row["prompt"] == task.messages(held_out[0])
        and row["gold_emotion"] == held_out[0].gold_emotion
    )


def test_new_span_markers_start_from_their_words(tmp_path):
    """A model without the markers gets them as single special tokens, each embedding the mean of
    its words' embeddings (distinct from one another), and the chat template unchanged."""
    from kardiabench.spans import span_markers
    from kardiabench.testing.tiny_model import build_tiny_model
    from kardiabench.train.model import load_model_and_tokenizer

    folder = build_tiny_model(tmp_path / "plain", span_tokens=False)
    model, tok = load_model_and_tokenizer(str(folder))
    ids = tok.convert_tokens_to_ids(span_markers("special"))
    assert len(set(ids)) == 8 and tok.unk_token_id not in ids
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] >= len(tok)
    words = tok("emotion end", add_special_tokens=False)["input_ids"]
    assert bool((emb[tok.convert_tokens_to_ids("<|emotion_end|>")] == emb[words].mean(dim=0)).all())
    assert len({tuple(emb[i].tolist()) for i in ids}) == 8
    assert tok("<|response_begin|>hi", add_special_tokens=False)["input_ids"][0] == ids[6]
    assert "<|im_start|>" in tok.chat_template


def test_grpo_keeps_the_best_evaluated_checkpoint(sft_dir, workdir, monkeypatch):
    """The 7B recipe's `load_best_model_at_end` on `eval_reward`, on the tiny model: the folder
    holds the weights of the best evaluation (named in the record and the card), not the last step's."""
    from safetensors.torch import load_file

    monkeypatch.setenv("JUDGE_KEY", "sk-local")
    out = workdir / "grpo-best"
    best_of = [
        "--set",
        "eval_fraction=0.1",
        "--set",
        "eval_limit=2",
        "--set",
        "eval_strategy=steps",
        "--set",
        "eval_steps=1",
        "--set",
        "save_strategy=steps",
        "--set",
        "save_steps=1",
        "--set",
        "load_best_model_at_end=true",
        "--set",
        "metric_for_best_model=eval_reward",
        "--set",
        "greater_is_better=false",
        "--set",
        "max_steps=3",
        "--set",
        "learning_rate=1e-3",
        "--set",
        "weight_decay=0.1",
    ]
    # weight decay moves the weights at every step even where the tiny model's rewards give GRPO no
    # gradient, so the checkpoints differ and which one was kept is visible; "best" is the lowest
    # reward here, which the untrained tiny model has at its first evaluation, so the best is not the last step
    with FakeOpenAIServer(FakeConfig()) as srv:
        code = main(
            [
                "train",
                "grpo",
                "--config",
                "grpo-tiny.yaml",
                "--output-dir",
                str(out),
                "--set",
                f"model={sft_dir}",
                "--set",
                "judge=openai:judge",
                "--set",
                f"judge_base_url={srv.url}",
                "--set",
                "judge_api_key_env=JUDGE_KEY",
                *FAST_GRPO,
                *best_of,
            ]
        )
    assert code == 0
    record = json.loads((out / "kardiabench_training.json").read_text())
    evals = {h["step"]: h["eval_reward"] for h in record["log_history"] if "eval_reward" in h}
    assert sorted(evals) == [1, 2, 3]
    best = record["best_checkpoint"]
    assert best["metric"] == "eval_reward" and best["value"] == min(evals.values())
    # ties: the earliest stays best
    best_step = min(s for s, v in evals.items() if v == best["value"])
    assert Path(best["path"]).name == f"checkpoint-{best_step}" and best_step != 3
    weights = {s: load_file(out / f"checkpoint-{s}" / "model.safetensors") for s in evals}
    final = load_file(out / "model.safetensors")
    assert any(not (weights[best_step][k] == weights[3][k]).all() for k in weights[3]), (
        "the steps did not change the weights"
    )
    assert all((final[k] == weights[best_step][k]).all() for k in weights[best_step])
    assert "the best evaluation by `eval_reward`" in (out / "README.md").read_text()


def test_lora_sft_merges_into_a_plain_checkpoint_and_trains_the_marker_rows(workdir):
    """LoRA through peft: the folder holds merged weights (no adapter files) that `kardiabench run`
    evaluates; the attention weights moved by the merged update, and of the embedding table only the
    span-marker rows (peft's trainable_token_indices), which a frozen table would leave untrained."""
    from safetensors.torch import load_file

    from kardiabench.spans import span_markers
    from kardiabench.train.model import resolve_model

    out = workdir / "sft-lora"
    code = main(
        [
            "train",
            "sft",
            "--config",
            "sft-tiny.yaml",
            "--output-dir",
            str(out),
            *FAST_SFT,
            "--set",
            "lora.r=4",
            "--set",
            "lora.lora_alpha=8",
        ]
    )
    assert code == 0
    assert (
        not (out / "adapter_config.json").exists()
        and not (out / "adapter_model.safetensors").exists()
    )
    assert "LoRA: merged into the weights" in (out / "README.md").read_text()
    base_dir = Path(resolve_model("tiny"))
    base, merged = load_file(base_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(merged) == set(base)
    q = next(k for k in base if k.endswith("q_proj.weight"))
    assert not bool((merged[q] == base[q]).all())
    from transformers import AutoTokenizer

    markers = AutoTokenizer.from_pretrained(out).convert_tokens_to_ids(span_markers("special"))
    emb = next(k for k in base if k.endswith("embed_tokens.weight"))
    moved = {int(i) for i in (merged[emb] != base[emb]).any(dim=1).nonzero().flatten()}
    assert moved and moved <= set(markers)
    run = workdir / "run-lora"
    assert (
        main(
            [
                "run",
                "--model",
                f"hf:{out}",
                "--data",
                "sample",
                "--limit",
                "2",
                "--output",
                str(run),
                "--max-tokens",
                "8",
                "--no-cache",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 2


def test_half_precision_without_a_gpu_is_said_not_silently_dropped(tmp_path, caplog):
    import torch

    from kardiabench.train import load_config
    from kardiabench.train.config import build_trl_args

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: bf16 is kept")
    cfg = load_config("sft-tiny.yaml", "sft", ["bf16=true"], str(tmp_path / "o"))
    with caplog.at_level("WARNING", logger="kardiabench"):
        args = build_trl_args(cfg)
    assert args.bf16 is False and args.use_cpu is True
    assert "no GPU: bf16 ignored, training in float32" in caplog.text
