"""The whole curation loop (issue 58, "Done when" 1), each step the real one: real audio extracted on Ray, an audit,
its review server over real HTTP, a scripted reviewer's verdicts, the label store, a corrected list, and train and
audit again on it.

The clips are generated (``demo.synth.generate_demo``) with a fifth of their labels flipped, so ``truth.csv`` says
which labels are wrong. The reviewer judges the review page's suspects from it, POSTing each verdict to the page's
own endpoint (``api/verdicts``) as the page does, with the page's Origin. Then:

- the second audit's estimated share of wrong labels is closer to the share really left wrong than the first's;
- the model trained on the corrected list is not worse than the first chosen model on the clips whose label did
  not change, read from the report's "What the labels changed" (``jobs/train/compare.py``).
"""

from __future__ import annotations

import csv
import json
import threading
import urllib.request
from pathlib import Path

import pytest

from acoustic_env.cli import main
from acoustic_env.demo.synth import generate_demo
from acoustic_env.pages.review import page_items
from acoustic_env.web.review_server import make_server, verdicts_uri

pytestmark = pytest.mark.slow
TRAIN = ["--baselines", "logreg", "--no-ablations", "--shap-samples", "0"]


def _post(url: str, records: list[dict]) -> dict:
    """One POST as the review page sends it: JSON, from the page's own origin."""
    req = urllib.request.Request(url + "api/verdicts", data=json.dumps(records).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Origin": url.rstrip("/")})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def _review(audit: Path, truth: dict[str, dict[str, str]]) -> int:
    """The scripted reviewer: every suspect on the page judged from the truth, through the running server; how
    many verdicts it sent."""
    srv = make_server(str(audit), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        suspects = sorted(c for sample, c in page_items(str(audit / "review")) if sample == "suspects")
        verdicts = [{"clip_id": c, "sample": "suspects", "given_labels": [truth[c]["given_class"]],
                     "verdict": "wrong" if truth[c]["flipped"] == "1" else "correct",
                     "corrected_label": [truth[c]["true_class"]] if truth[c]["flipped"] == "1" else []}
                    for c in suspects]
        assert _post(url, verdicts) == {"total": len(verdicts)}
    finally:
        srv.shutdown()
        srv.server_close()
    return len(verdicts)


def _share(audit: Path) -> float:
    return json.loads((audit / "summary.json").read_text())["noise"]["estimated_wrong_share"]


def test_audit_review_relabel_train_audit(ray_session, tmp_path, monkeypatch):
    demo = generate_demo(tmp_path / "demo", n_clips=48, seed=58, duration_s=3.0, label_noise=0.2, n_broken=0)
    truth = {r["clip_id"]: r for r in csv.DictReader(open(demo.truth_csv))}
    monkeypatch.chdir(tmp_path)
    run = lambda *argv: main(list(argv)) == 0  # noqa: E731
    assert run("extract", "--manifest", str(demo.clips_csv), "--audio-root", str(demo.audio_dir), "--output", "out",
               "--embedders", "none", "--no-progress")
    assert run("train", "--features", "out", "--output", "model", *TRAIN)  # the first chosen model
    assert run("audit", "--features", "out", "--output", "audit-v1", "--review-top", "16")  # a third of the clips
    reviewed = _review(tmp_path / "audit-v1", truth)
    assert run("labels", "add-verdicts", "--features", "out", "--verdicts", verdicts_uri("audit-v1"),
               "--reviewer", "bot")
    assert run("labels", "apply", "--features", "out", "--output", "corrected.csv")
    assert run("train", "--features", "out", "--output", "model", "--labels", "corrected.csv", *TRAIN)
    assert run("audit", "--features", "out", "--output", "audit-v2", "--labels", "corrected.csv")

    corrected = {r["clip_id"]: r["labels"] for r in csv.DictReader(open(tmp_path / "corrected.csv"))}
    wrong_before = sum(r["flipped"] == "1" for r in truth.values())
    wrong_after = sum(corrected.get(c, r["given_class"]) != r["true_class"] for c, r in truth.items())
    fixed = wrong_before - wrong_after
    assert 0 < fixed <= reviewed == 16, (fixed, reviewed)
    true_share = (wrong_before / len(truth), wrong_after / len(truth))
    estimated = (_share(tmp_path / "audit-v1"), _share(tmp_path / "audit-v2"))
    assert abs(estimated[1] - true_share[1]) < abs(estimated[0] - true_share[0]), (estimated, true_share)

    changed = json.loads((tmp_path / "model" / "report" / "metrics.json").read_text())["labels_changed"]
    assert changed["table"]["changed"] == fixed and changed["previous"]["changed"] == fixed, changed
    unchanged = changed["unchanged"]
    assert unchanged["clips"] == len(truth) - fixed, unchanged
    assert unchanged["new"] >= unchanged["previous"], unchanged  # the corrected labels did not make it worse
    records = [json.loads(p.read_text()) for p in (tmp_path / "model" / "runs").glob("*.json")]
    assert [r["labels_changed"] for r in records if r.get("label_list")] == [changed]  # kept beyond the next run
