"""Build the bundled synthetic KardiaBench sample (train.jsonl / test.jsonl).

All dialogue text is invented for this sample and lives in the ``_sample_part*.py``
modules next to this script as plain Python data. Running this script writes both
JSONL files deterministically and then validates them::

    python kardiabench/data/sample/_build_sample.py

Data layout used by the part modules:

* ``PERSONAS``: ``{anon_username: {"split", "mbti", "about", "signature", "activities"}}``
* ``DIALOGUES``: list of ``{"user", "emotion", "situation", "turns"}`` where every turn
  is ``(user_text, understanding, reasoning, emotion, response)``.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
PART_MODULES = sorted(p.stem for p in HERE.glob("_sample_part*.py"))

EMOTIONS = (
    "afraid", "angry", "annoyed", "anticipating", "anxious", "apprehensive", "ashamed",
    "caring", "confident", "content", "devastated", "disappointed", "disgusted",
    "embarrassed", "excited", "faithful", "furious", "grateful", "guilty", "hopeful",
    "impressed", "jealous", "joyful", "lonely", "nostalgic", "prepared", "proud", "sad",
    "sentimental", "surprised", "terrified", "trusting",
)

SYSTEM_TEMPLATE = (
    "You are a warm, perceptive emotional-support companion. Before replying, understand "
    "the user, reason about what they need, name the emotion they are feeling, then respond."
    "\n\nUser profile:\n{person}\n\nSituation: {situation}"
)

SPANS = ("understanding", "reasoning", "emotion", "response")
SPECIAL = {s: (f"<|{s}_begin|>", f"<|{s}_end|>") for s in SPANS}
XML = {s: (f"<{s}>", f"</{s}>") for s in SPANS}
STYLES = {"special": SPECIAL, "xml": XML}


def load_parts() -> tuple[dict, list]:
    sys.path.insert(0, str(HERE))
    personas: dict = {}
    dialogues: list = []
    for name in PART_MODULES:
        mod = importlib.import_module(name)
        for key in mod.PERSONAS:
            assert key not in personas, f"duplicate persona {key}"
        personas.update(mod.PERSONAS)
        dialogues.extend(mod.DIALOGUES)
    return personas, dialogues


def person_text(p: dict) -> str:
    return (
        f"MBTI: {p['mbti']}\nAbout: {p['about']}\nSignature: {p['signature']}\n"
        f"Recent Activities: {p['activities']}"
    )


def style_for(index: int) -> str:
    # Deterministic ~70/30 split between the two tag styles within each split.
    return "xml" if index % 10 in (2, 5, 8) else "special"


def render_assistant(turn: tuple, style: str) -> str:
    _, understanding, reasoning, emotion, response = turn
    tags = STYLES[style]
    values = dict(understanding=understanding, reasoning=reasoning, emotion=emotion,
                  response=response)
    return "\n".join(f"{tags[s][0]}{values[s]}{tags[s][1]}" for s in SPANS)


def build_records(personas: dict, dialogues: list) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for d in dialogues:
        p = personas[d["user"]]
        split = p["split"]
        style = style_for(len(out[split]))
        person = person_text(p)
        messages = [{
            "role": "system",
            "content": SYSTEM_TEMPLATE.format(person=person, situation=d["situation"]),
        }]
        for turn in d["turns"]:
            messages.append({"role": "user", "content": turn[0]})
            messages.append({"role": "assistant", "content": render_assistant(turn, style)})
        out[split].append({
            "person": person,
            "mbti": p["mbti"],
            "emotion": d["emotion"],
            "situation": d["situation"],
            "anon_username": d["user"],
            "messages": messages,
        })
    return out


def write(records: dict[str, list[dict]]) -> None:
    for split, rows in records.items():
        with open(HERE / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


SPECIAL_RE = re.compile(
    r"\A<\|understanding_begin\|>(?P<understanding>[^<>]+)<\|understanding_end\|>\n"
    r"<\|reasoning_begin\|>(?P<reasoning>[^<>]+)<\|reasoning_end\|>\n"
    r"<\|emotion_begin\|>(?P<emotion>[a-z]+)<\|emotion_end\|>\n"
    r"<\|response_begin\|>(?P<response>[^<>]+)<\|response_end\|>\Z"
)
XML_RE = re.compile(
    r"\A<understanding>(?P<understanding>[^<>]+)</understanding>\n"
    r"<reasoning>(?P<reasoning>[^<>]+)</reasoning>\n"
    r"<emotion>(?P<emotion>[a-z]+)</emotion>\n"
    r"<response>(?P<response>[^<>]+)</response>\Z"
)
FORBIDDEN = re.compile(r"[<>*#`|_]|\[|\]|\bhttps?:")
WORD_RANGES = {"user": (15, 60), "understanding": (25, 50), "reasoning": (30, 60),
               "response": (12, 35)}


def check(verbose: bool = True) -> None:
    """Validate the written JSONL files against the sample's requirements."""
    splits = {}
    for split in ("train", "test"):
        with open(HERE / f"{split}.jsonl", encoding="utf-8") as fh:
            splits[split] = [json.loads(line) for line in fh if line.strip()]

    assert len(splits["train"]) >= 48 - 2 and len(splits["test"]) >= 16
    assert len(splits["train"]) + len(splits["test"]) >= 64

    users = {s: {r["anon_username"] for r in rows} for s, rows in splits.items()}
    assert not users["train"] & users["test"], "persona overlap between splits"
    assert len(users["train"]) + len(users["test"]) >= 20
    assert len(users["train"]) >= 14 and len(users["test"]) >= 5

    seen_dialogues = set()
    soft: Counter = Counter()
    soft_examples: dict[str, list[str]] = {}
    all_mbti = set()
    for split, rows in splits.items():
        labels: Counter = Counter()
        styles: Counter = Counter()
        per_user: Counter = Counter()
        person_by_user: dict[str, str] = {}
        for r in rows:
            assert set(r) == {"person", "mbti", "emotion", "situation", "anon_username",
                              "messages"}
            assert re.fullmatch(r"user_[0-9a-f]{4}", r["anon_username"])
            assert re.fullmatch(r"[EI][NS][TF][JP]", r["mbti"])
            all_mbti.add(r["mbti"])
            assert r["person"].startswith(f"MBTI: {r['mbti']}\nAbout: ")
            assert "\nSignature: " in r["person"] and "\nRecent Activities: " in r["person"]
            assert person_by_user.setdefault(r["anon_username"], r["person"]) == r["person"]
            per_user[r["anon_username"]] += 1
            assert r["emotion"] in EMOTIONS, r["emotion"]
            msgs = r["messages"]
            assert msgs[0]["role"] == "system"
            assert msgs[0]["content"] == SYSTEM_TEMPLATE.format(
                person=r["person"], situation=r["situation"])
            rest = msgs[1:]
            assert len(rest) % 2 == 0 and 6 <= len(rest) // 2 <= 10, len(rest)
            dialogue_styles = set()
            for i, m in enumerate(rest):
                assert set(m) == {"role", "content"}
                assert m["role"] == ("user" if i % 2 == 0 else "assistant")
                if m["role"] == "user":
                    assert m["content"].strip() and not FORBIDDEN.search(m["content"]), m
                    texts = {"user": m["content"]}
                else:
                    mt = SPECIAL_RE.match(m["content"])
                    style = "special"
                    if mt is None:
                        mt, style = XML_RE.match(m["content"]), "xml"
                    assert mt is not None, m["content"]
                    dialogue_styles.add(style)
                    parts = mt.groupdict()
                    for name in SPANS:
                        assert parts[name].strip() == parts[name] and parts[name]
                        open_tag, close_tag = STYLES[style][name]
                        assert m["content"].count(open_tag) == 1
                        assert m["content"].count(close_tag) == 1
                    assert parts["emotion"] in EMOTIONS, parts["emotion"]
                    labels[parts["emotion"]] += 1
                    texts = {k: parts[k] for k in ("understanding", "reasoning", "response")}
                    for t in texts.values():
                        assert not FORBIDDEN.search(t), t
                for k, t in texts.items():
                    lo, hi = WORD_RANGES[k]
                    n = len(t.split())
                    # Ranges are approximate targets; only flag clear outliers.
                    if not lo - 4 <= n <= hi + 5:
                        soft[k] += 1
                        soft_examples.setdefault(k, []).append(f"{n}: {t[:70]}")
            assert len(dialogue_styles) == 1, "a dialogue must use one tag style"
            styles[dialogue_styles.pop()] += 1
            key = json.dumps(msgs[1:], ensure_ascii=False)
            assert key not in seen_dialogues, "duplicate dialogue"
            seen_dialogues.add(key)
        assert all(2 <= n <= 4 for n in per_user.values()), per_user
        missing = set(EMOTIONS) - set(labels)
        assert not missing, f"{split}: labels missing {sorted(missing)}"
        assert set(styles) == {"special", "xml"}, styles
        if verbose:
            n_turns = sum((len(r["messages"]) - 1) // 2 for r in rows)
            print(f"[{split}] dialogues={len(rows)} assistant_turns={n_turns} "
                  f"personas={len(per_user)} styles={dict(styles)}")
            print(f"[{split}] labels: " + ", ".join(
                f"{k}={labels[k]}" for k in sorted(labels, key=lambda x: -labels[x])))
    assert len(all_mbti) >= 12, all_mbti
    if verbose:
        print(f"MBTI types used: {len(all_mbti)}")
        if soft:
            print(f"soft length warnings: {dict(soft)}")
            for k, ex in soft_examples.items():
                for e in ex[:8]:
                    print(f"  {k} {e}")
    print("check: OK")


def main() -> None:
    personas, dialogues = load_parts()
    for d in dialogues:
        for t in d["turns"]:
            assert len(t) == 5, t
    write(build_records(personas, dialogues))
    check()


if __name__ == "__main__":
    main()
