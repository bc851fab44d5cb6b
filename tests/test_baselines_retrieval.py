"""baseline:retrieval: answers identical to the scikit-learn implementation it replaced, and a
fitted index kept next to the request cache that gives the same answers when read back."""

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kardiabench.data import expand, load_dialogues
from kardiabench.models import load_model
from kardiabench.models.base import ChatRequest

# sha256[:16] of each answer of the scikit-learn version (commit dc5e287) on the sample's items
BEFORE = json.loads((Path(__file__).parent / "data" / "retrieval_sample_answers.json").read_text())


def answers(model, split):
    items = list(expand(load_dialogues("sample", split).dialogues))
    outs = asyncio.run(
        model.generate([ChatRequest(messages=(("user", i.user_message),)) for i in items])
    )
    return {
        i.item_id: hashlib.sha256(o.text.encode()).hexdigest()[:16]
        for i, o in zip(items, outs, strict=True)
    }


@pytest.mark.parametrize("split", ["test", "train"])
def test_answers_equal_the_scikit_learn_version_fitted_and_read_back(tmp_path, split):
    train = load_dialogues("sample", "train").dialogues
    fitted = load_model("baseline:retrieval", train_dialogues=train, index_dir=tmp_path)
    assert answers(fitted, split) == BEFORE[split]
    assert len(list(tmp_path.glob("retrieval-*/index.json"))) == 1
    read_back = load_model("baseline:retrieval", train_dialogues=train, index_dir=tmp_path)
    assert answers(read_back, split) == BEFORE[split]


def test_a_changed_training_text_fits_a_new_index(tmp_path):
    train = load_dialogues("sample", "train").dialogues
    load_model("baseline:retrieval", train_dialogues=train, index_dir=tmp_path)
    load_model("baseline:retrieval", train_dialogues=train[1:], index_dir=tmp_path)
    assert len(list(tmp_path.glob("retrieval-*/index.json"))) == 2


def test_an_index_read_back_does_not_import_scikit_learn(tmp_path):
    code = (
        "import sys; from kardiabench.data import load_dialogues; from kardiabench.models import load_model; "
        f"load_model('baseline:retrieval', train_dialogues=load_dialogues('sample', 'train').dialogues, index_dir={str(tmp_path)!r}); "
        "print('sklearn' in sys.modules)"
    )
    run = [sys.executable, "-c", code]
    # fits
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip() == "True"
    # reads
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_pruned_search_finds_the_same_item_as_scoring_every_item(tmp_path):
    """The top-1 search skips low-weight terms; on templated synthetic turns (where pruning does
    most) it must pick what scoring every training item picks, ties going to the earliest item."""
    import numpy as np

    from kardiabench.data.synth import write_dataset
    from kardiabench.models.baselines import RetrievalIndex

    write_dataset(tmp_path / "syn", n_dialogues=400, seed=3)
    index = RetrievalIndex.fit(load_dialogues(str(tmp_path / "syn"), "train").dialogues)
    texts = [
        i.user_message for i in expand(load_dialogues(str(tmp_path / "syn"), "test").dialogues)
    ]
    texts += ["", "the of and", texts[0] + " " + texts[1], texts[2].upper()]
    scores = (index.vectorise(texts) @ index.matrix_t).toarray()
    expected = scores.argmax(axis=1).tolist()  # numpy's argmax: the first of equal maxima
    assert index.nearest(texts) == expected
    ties = [row for row in scores if np.sum(row == row.max()) > 1]
    assert ties, "templated turns should include exact ties"
