"""The runners (a command's config in, its job run) and the summary lines of ``audioset sample``, ``rescore`` and
``frames`` (their catalogue entries: ``jobs/catalog.py``; ``fetch``'s are its module's own): what each did, as a
value for ``ae.run`` and as the lines the command prints. The heavy modules are imported when a run starts."""

from __future__ import annotations

from typing import Any

from acoustic_env.config.audioset import FramesConfig, RescoreConfig, SampleConfig
from acoustic_env.jobs.results import Done


def run_sample(cfg: SampleConfig) -> Done:
    from acoustic_env.audioset.sample import sample_segments

    return Done(sample_segments(cfg), cfg)


def sample_lines(done: Done) -> list[str]:
    from acoustic_env.audioset.sample import report_uri, summary_lines

    out = done.config.output
    return [*summary_lines(done.result.report), f"  sample: {out}", f"  report: {report_uri(out)}"]


def run_rescore(cfg: RescoreConfig) -> Done:
    from acoustic_env.jobs.audioset.rescored import rescored_list

    return Done(rescored_list(cfg.audit, cfg.output, list(cfg.verdicts), cfg.method), cfg)


def rescore_lines(done: Done) -> list[str]:
    from acoustic_env.jobs.audioset.rescored import accuracy_uri

    accuracy, cfg = done.result, done.config
    lines = [f"{accuracy['clips']} clips, {accuracy['reviewed']} reviewed: {cfg.output}"]
    if accuracy["verdicts_left_out"]:
        lines.append(f"  left out {accuracy['verdicts_left_out']} verdicts for clips not in audit {cfg.audit} "
                     "(not on its review page)")
    return [*lines, f"  label accuracy per class: {accuracy_uri(cfg.output)} (also in the file's header)"]


def run_frames(cfg: FramesConfig) -> Done:
    from acoustic_env.jobs.audioset.frames import compare_frames

    return Done(compare_frames(cfg), cfg)


def frames_lines(done: Done) -> list[str]:
    from acoustic_env.jobs.audioset.frames import table

    r, cfg = done.result, done.config
    why = "no class" if cfg.multi_label else "no class or ambiguous"
    lines = [f"{r['clips']} clips with ten frames ({r['left_out']} left out: {why}), task {r['task']}; "
             f"test {r['split']['test']} clips"]
    if r["oversampled"] is not None:
        added = ", ".join(f"{c} +{n}" for c, n in r["oversampled"].items()) or "none: the classes are balanced"
        lines.append(f"  training rows added by shuffling seconds: {added}")
    return [*lines, table(r["results"]), f"  comparison: {cfg.output}"]


def run_fetch(cfg: Any) -> Any:
    """``audioset fetch``, saying each batch's progress on the console as it goes (a download takes hours)."""
    from acoustic_env.jobs.audioset.fetch import fetch

    return fetch(cfg, progress=print)
