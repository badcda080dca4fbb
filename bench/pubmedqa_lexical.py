"""A lexical baseline for PubMedQA PQA-L on the project's split: TF-IDF + logistic regression.

It trains on the 500 questions outside the official test split (question and contexts joined, as
the decoder's prompt has them), chooses its settings (n-grams, regularization, class weights) by
5-fold cross-validation on those 500 only, and scores the official 500 test questions once, with
the same metrics as `bcfl llm eval` (accuracy, macro-F1 over yes/no/maybe, confusion matrix). It
says how much of the task word statistics alone can answer, beside the majority answer (0.552 /
0.237) and the fine-tuned decoder.

Needs scikit-learn (`python3 -m venv V && V/bin/pip install scikit-learn==1.9.1`); prints JSON.
Usage: V/bin/python bench/pubmedqa_lexical.py [data/pubmedqa]
"""

import itertools
import json
import sys
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

LABELS = ["yes", "no", "maybe"]


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "data/pubmedqa")
    questions = json.loads((root / "ori_pqal.json").read_text())
    test_ids = set(json.loads((root / "test_ground_truth.json").read_text()))

    def rows(ids):
        texts = [questions[i]["QUESTION"] + " " + " ".join(questions[i]["CONTEXTS"]) for i in ids]
        return texts, [questions[i]["final_decision"] for i in ids]

    train_ids = sorted(i for i in questions if i not in test_ids)
    x_train, y_train = rows(train_ids)
    x_test, y_test = rows(sorted(test_ids))

    def model(ngrams, c, weights):
        return make_pipeline(
            TfidfVectorizer(ngram_range=ngrams, min_df=2, sublinear_tf=True),
            LogisticRegression(C=c, max_iter=5000, class_weight=weights),
        )

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    grid = []
    for ngrams, c, weights in itertools.product(
        [(1, 1), (1, 2)], [0.3, 1.0, 3.0, 10.0], [None, "balanced"]
    ):
        predicted = cross_val_predict(model(ngrams, c, weights), x_train, y_train, cv=folds)
        grid.append(
            {
                "ngrams": list(ngrams),
                "C": c,
                "class_weight": weights,
                "cv_accuracy": accuracy_score(y_train, predicted),
                "cv_macro_f1": f1_score(y_train, predicted, average="macro", labels=LABELS),
            }
        )
    chosen = {}
    for metric in ["cv_accuracy", "cv_macro_f1"]:
        best = max(grid, key=lambda g: g[metric])
        fitted = model(tuple(best["ngrams"]), best["C"], best["class_weight"]).fit(x_train, y_train)
        predicted = fitted.predict(x_test)
        chosen[metric] = {
            "settings": best,
            "test_accuracy": accuracy_score(y_test, predicted),
            "test_macro_f1": f1_score(y_test, predicted, average="macro", labels=LABELS),
            "confusion": confusion_matrix(y_test, predicted, labels=LABELS).tolist(),
        }
    print(
        json.dumps(
            {
                "train_questions": len(train_ids),
                "test_questions": len(test_ids),
                "labels": LABELS,
                "grid": grid,
                "chosen_by": chosen,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
