"""The paper's human A/B evaluation (docs/annotate.md).

study.py   `kardiabench annotate RUN_A RUN_B`: sample shared items, blind them (sides shuffled per
           item, recorded in DIR/key.json), write one offline HTML page per annotator and a
           Label Studio project (config.xml + tasks.json)
labels.py  `kardiabench annotate import DIR FILES…`: read the exported choices, unblind them, and
           compute win rates (scoring/preference.py), agreement (scoring/agreement.py), the items to
           discuss, adjudication, human_labels.jsonl
adjudicate.py  `import --adjudicate-with SPEC`: the LLM pairwise judge (pairwise_stage.py) settles
           what the annotators' majority and the adjudication file left unresolved
"""

from kardiabench.annotation.labels import AnnotationResults, import_labels
from kardiabench.annotation.study import AnnotateError, Study, StudyKey, create_study, read_key

__all__ = [
    "AnnotateError",
    "AnnotationResults",
    "Study",
    "StudyKey",
    "create_study",
    "import_labels",
    "read_key",
]
