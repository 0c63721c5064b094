"""``acoustic-env audit-review | audit-estimate``: a person's review of an audit, and the label accuracy it gives."""

from __future__ import annotations

import argparse
import threading

from acoustic_env.config import AuditConfig, ConfigError, flag_help


def cmd_audit_review(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audit.job import rebuild_review
    from acoustic_env.pages.review import verdicts_uri
    from acoustic_env.web.review_server import make_server
    from acoustic_env.jobs.stop_signals import StopSignals
    from acoustic_env.storage import redact

    if args.review_top is not None or args.random_sample is not None:
        top = AuditConfig.review_top if args.review_top is None else args.review_top
        sample = AuditConfig.random_sample if args.random_sample is None else args.random_sample
        print(f"review page: {rebuild_review(args.audit, top, sample, args.seed)}")
    if args.serve:
        with StopSignals() as stop:  # Ctrl-C or kill: the server stops and releases the audit's lock
            server = make_server(args.audit, args.port, args.store, args.reviewer)
            sink = server.store.sink
            also = f" and appended to the label store {redact(sink.store)}" if sink else ""
            print(f"serving the review page at http://127.0.0.1:{server.server_address[1]}/ "
                  f"(verdicts are saved to {redact(verdicts_uri(args.audit))}{also}); Ctrl-C stops", flush=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                stop.wait()
            finally:
                server.shutdown()
                server.server_close()
    return 0


def cmd_audit_estimate(args: argparse.Namespace) -> int:
    from acoustic_env.errors import AuditError
    from acoustic_env.jobs.audit.estimate import (
        estimate_accuracy,
        estimate_lines,
        on_page,
        read_verdicts,
    )
    from acoustic_env.pages.review import PAGE, REVIEW_DIR
    from acoustic_env.storage import filesystem, join, write_json

    records = read_verdicts(args.verdicts)
    beside = args.verdicts[0].rsplit("/", 1)[0] if "/" in args.verdicts[0] else "."
    review_dir = join(args.audit, REVIEW_DIR) if args.audit else beside
    fs, page = filesystem(join(review_dir, PAGE))
    if args.audit or fs.exists(page):
        kept, others = on_page(records, review_dir)
        if records and not kept:  # what was found, not "no verdicts": the files hold some, about other clips
            raise AuditError(f"verdicts: {len(records)} verdict(s) in {', '.join(args.verdicts)}, none for a clip "
                             f"on {join(review_dir, PAGE)} (e.g. {records[0]['clip_id']!r} in the "
                             f"{records[0]['sample']} sample)")
        records = kept
        if others:
            print(f"left out {others} verdicts for clips not in audit {args.audit or review_dir} "
                  "(not on its review page)")
    else:  # nothing to check the clip ids against: a forged or foreign verdict would count unseen
        print(f"note: no review page beside {args.verdicts[0]}: every verdict is counted, whatever its clip; "
              "pass --audit to count only the audit's clips")
    est = estimate_accuracy(records, args.sample, args.method)
    if args.labels:
        est = _after_corrections(est, args.audit, args.labels)
    print("\n".join(estimate_lines(est)))
    if args.output:
        write_json(est, args.output)
        print(f"  written to {args.output}")
    return 0


def _after_corrections(est: dict, audit: str | None, labels: str) -> dict:
    """``est`` carried over to the corrected list ``labels`` (``estimate.after_corrections``), the audited clips'
    given classes read from the audit's table."""
    import pyarrow.parquet as pq

    from acoustic_env.jobs.audit.estimate import after_corrections
    from acoustic_env.jobs.audit.job import SUMMARY, TABLE
    from acoustic_env.labels.label_list import read_label_list
    from acoustic_env.storage import filesystem, join, read_json
    from acoustic_env.vocabulary.tasks import load_task

    if not audit:
        raise ConfigError("labels: needs --audit, the audit whose clips the list corrects")
    config = read_json(join(audit, SUMMARY))["config"]
    listed = read_label_list(labels, load_task(config["task"], config.get("ontology")))
    fs, path = filesystem(join(audit, TABLE))
    with fs.open(path, "rb") as f:
        rows = pq.read_table(f, columns=["clip_id", "given_labels"]).to_pylist()
    return after_corrections(est, {r["clip_id"]: tuple(r["given_labels"] or ()) for r in rows}, listed.labels)


def add_review_parsers(sub: argparse._SubParsersAction) -> None:
    """``audit-review`` and ``audit-estimate`` on the ``acoustic-env`` parser."""
    p = sub.add_parser("audit-review", help="serve an audit's review page locally (verdicts saved as you click)")
    p.add_argument("--audit", required=True, help="the audit's output directory or URI")
    p.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1 and save verdicts it posts")
    p.add_argument("--port", type=int, default=8765, help="port for --serve (default: 8765; 0 picks a free one)")
    p.add_argument("--store", nargs="?", const="", metavar="URI",
                   help="with --serve, append each verdict to the label store too, as it is clicked (no URI: the store "
                        "beside the audited feature table); `labels apply` then writes the corrected list")
    p.add_argument("--reviewer", help="with --store, the reviewer credited when the page names nobody (default: the "
                                      "account running the server)")
    p.add_argument("--review-top", type=int, help="rebuild the page: " + flag_help(AuditConfig, "review_top"))
    p.add_argument("--random-sample", type=int, help="rebuild the page: " + flag_help(AuditConfig, "random_sample"))
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample when rebuilding (default: 0)")
    p.set_defaults(func=cmd_audit_review)

    p = sub.add_parser("audit-estimate", help="label accuracy per class, with an interval, from review verdicts")
    p.add_argument("--verdicts", required=True, nargs="+", help="verdict file(s): JSON or CSV from the review page")
    p.add_argument("--sample", help="random (unbiased accuracy; the default when present) or suspects (precision of the flags)")
    p.add_argument("--method", default="wilson", help="interval: wilson (default) or bootstrap")
    p.add_argument("--output", help="write the estimate JSON here (the training report reads it)")
    p.add_argument("--audit", help="the audit reviewed: verdicts for clips not on its review page are left out "
                                   "(default: the review page beside the first verdict file, when there is one)")
    p.add_argument("--labels", help="a corrected label list (CSV of `labels apply`, or a label store): estimate its "
                                    "accuracy instead of the table's: the wrong labels the random sample implies, less "
                                    "those the list fixed (needs --audit)")
    p.set_defaults(func=cmd_audit_estimate)
