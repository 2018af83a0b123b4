"""scripts/benchmark.py: the reference pipeline's pieces, its parity with seqnlp's model, data reading and the report.

Only pure helpers run here, on tiny data; nothing is timed and no number is judged (timings are benchmark output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from seqnlp.config import load_config
from seqnlp.model import RecurrentEncoder, RNNClassifier

from tests.helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"


bench = load_script("benchmark")


def job(cell: str = "lstm", **updates: Any) -> dict[str, Any]:
    """A job as the script builds it, with the fields seqnlp_updates reads."""
    fields = {"train_file": "train.jsonl", "eval_file": "eval.jsonl", "max_length": 400, "cell": cell, "epochs": 2,
              "batch_size": 64, "infer_batch": 256, "bucket_pool": 50, "precision": "fp32", "threads": 1, "seed": 13,
              "run_dir": "runs/x"}
    fields.update(updates)
    return fields


def test_tokenize_lowercases_and_splits_on_whitespace() -> None:
    assert bench.tokenize("A  Gripping,\tfilm\n!") == ["a", "gripping,", "film", "!"]


def test_build_vocab_keeps_frequent_tokens_after_the_specials() -> None:
    vocab = bench.build_vocab(["b a b", "c b a", "d"], max_size=10, min_freq=2)
    assert vocab == {"<pad>": 0, "<unk>": 1, "b": 2, "a": 3}  # c and d are seen once
    assert len(bench.build_vocab(["a a b b c c"], max_size=4, min_freq=1)) == 4  # the bound counts the specials


def test_numericalize_maps_unknowns_truncates_and_never_returns_empty() -> None:
    vocab = {"<pad>": 0, "<unk>": 1, "good": 2, "film": 3}
    assert bench.numericalize("Good film , good", vocab, max_length=3) == [2, 3, 1]
    assert bench.numericalize("   ", vocab, max_length=3) == [1]


def test_dataset_and_collate_pad_a_batch() -> None:
    vocab = {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3}
    dataset = bench.ReferenceDataset(["a b a", "b", "a zzz"], [1, 0, 1], vocab, max_length=5)
    ids, lengths, labels = next(iter(DataLoader(dataset, batch_size=3, collate_fn=bench.collate_batch)))
    assert ids.tolist() == [[2, 3, 2], [3, 0, 0], [2, 1, 0]]  # [B, T], padded with <pad> = 0
    assert lengths.tolist() == [3, 1, 2] and lengths.device.type == "cpu"
    assert labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_seqnlp_config_builds_the_reference_model(cell: str) -> None:
    """Same parameters, and with the reference's weights copied in, the same logits on a mixed-length batch."""
    torch.manual_seed(0)
    config = load_config(updates=bench.seqnlp_updates(job(cell)))
    reference = bench.ReferenceClassifier(vocab_size=40, num_labels=2, cell=cell).eval()
    model = RNNClassifier(config.model, vocab_size=40, num_labels=2).eval()
    state = {k.replace("rnn.", "encoder.rnn.").replace("fc.", "head.1."): v for k, v in reference.state_dict().items()}
    model.load_state_dict(state, strict=True)  # every parameter has a counterpart
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [11, 0, 0, 0]])  # [B, T]
    lengths = torch.tensor([4, 2, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(ids, lengths), reference(ids, lengths))


def test_packing_probe_counts_equal_length_batches_and_forcing_keeps_the_math(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RecurrentEncoder, "forward", RecurrentEncoder.forward)  # restored after the test
    torch.manual_seed(0)
    config = load_config(updates=bench.seqnlp_updates(job("lstm")))
    model = RNNClassifier(config.model, vocab_size=40, num_labels=2).eval()
    ids, lengths = torch.tensor([[5, 6, 7], [8, 9, 10]]), torch.tensor([3, 3])  # equal lengths: seqnlp runs dense
    with torch.no_grad():
        dense = model(ids, lengths)
        probe = bench.PackingProbe(force=True)
        probe.install()
        packed = model(ids, lengths)
    torch.testing.assert_close(packed, dense, atol=1e-5, rtol=1e-4)
    model.train()
    model(ids, lengths)
    model(torch.tensor([[5, 6], [7, 0]]), torch.tensor([2, 1]))
    assert probe.stats() == {"train_batches": 2, "equal_length_share": 0.5, "dense_share": 0.0}


def test_packing_probe_counts_masked_batches_as_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RecurrentEncoder, "forward", RecurrentEncoder.forward)  # restored after the test
    config = load_config(updates=bench.seqnlp_updates(job("lstm")))
    model = RNNClassifier(config.model, vocab_size=40, num_labels=2).train()
    probe = bench.PackingProbe(force=False)
    probe.install()
    model(torch.tensor([[5, 6, 7], [8, 9, 10]]), torch.tensor([3, 3]))  # equal lengths: dense
    model(torch.ones(8, 10, dtype=torch.long), torch.tensor([10] * 7 + [9]))  # 1.25% padding: masked
    model(torch.tensor([[5, 6], [7, 0]]), torch.tensor([2, 1]))  # 25% padding, short: packed
    assert probe.stats() == {"train_batches": 3, "equal_length_share": 1 / 3, "dense_share": 2 / 3}


def test_readers_parse_sst2_tsv_without_quoting_and_imdb_csv_with_quoting(tmp_path: Path) -> None:
    sst2 = tmp_path / "train.tsv"
    sst2.write_text('sentence\tlabel\nit \'s a "charming" film \t1\nbleak \t0\n', encoding="utf-8")
    assert bench.read_sst2(sst2) == [('it \'s a "charming" film ', "positive"), ("bleak ", "negative")]
    imdb = tmp_path / "train.csv"
    imdb.write_text('id,rating,label,text\ntrain_neg_0,3,neg,"Dull, long.<br />Really ""long"".\nEnd"\n'
                    "train_pos_0,9,pos,Great\n", encoding="utf-8")
    assert bench.read_imdb(imdb) == [('Dull, long.<br />Really "long".\nEnd', "neg"), ("Great", "pos")]


def test_seeded_subsets_are_nested_and_repeatable() -> None:
    rows = list(range(100))
    small, large = bench.seeded_subset(rows, 10, seed=3), bench.seeded_subset(rows, 40, seed=3)
    assert large[:10] == small and len(set(large)) == 40
    assert bench.seeded_subset(rows, 10, seed=3) == small
    assert sorted(bench.seeded_subset(rows, None, seed=3)) == rows


def test_jobs_cover_each_configuration_with_per_study_defaults() -> None:
    settings = {"seed": 13, "epochs": 1, "max_length": 400, "batch_size": 64, "infer_batch": 256,
                "latency_samples": 5, "keep_runs": False, "datasets": ["sst2"], "threads": [2],
                "pipelines": ["reference", "seqnlp"], "cells": None, "precisions": None, "pools": [1, "all"],
                "packing_modes": ["auto", "packed"], "bucketings": ["pool"]}
    data = {"dataset": "sst2", "train_file": "t.jsonl", "eval_file": "e.jsonl", "train_examples": 1000}
    main = bench.main_jobs(settings, {"sst2": data}, repeat=1)
    assert len(main) == 9  # 3 cells x (reference fp32 + seqnlp fp32 + seqnlp bf16)
    assert {j["precision"] for j in main if j["pipeline"] == "reference"} == {"fp32"}
    assert all(j["seed"] == 14 and j["threads"] == 2 for j in main)
    assert {j["bucketing"] for j in main} == {"pool"}
    both = bench.main_jobs({**settings, "bucketings": ["pool", "exact"]}, {"sst2": data}, repeat=1)
    assert len(both) == 15  # 3 cells x (reference + seqnlp x 2 precisions x 2 bucketings)
    assert {(j["bucketing"], j["variant"]) for j in both if j["pipeline"] == "seqnlp"} == {("pool", ""),
                                                                                          ("exact", "exact")}
    packing = bench.packing_jobs({**settings, "pools": [1, "all", "exact"]}, data, repeat=0)
    assert [(j["bucketing"], j["bucket_pool"], j["force_packing"]) for j in packing] == [
        ("pool", 1, False), ("pool", 1, True), ("pool", 16, False), ("pool", 16, True), ("exact", 16, False),
        ("exact", 16, True)]
    assert len({j["id"] for j in both + packing}) == len(both + packing)


def fake_run(pipeline: str, repeat: int, tokens_per_s: float, accuracy: float) -> dict[str, Any]:
    return {
        "job": {"study": "main", "dataset": "sst2", "pipeline": pipeline, "cell": "lstm", "precision": "fp32",
                "threads": 1, "variant": "", "repeat": repeat, "train_examples": 100},
        "epochs": [{"loss": 0.5, "seconds": 2.0, "tokens_per_s": tokens_per_s, "examples_per_s": tokens_per_s / 10,
                    "padding_ratio": 0.1}],
        "accuracy": accuracy, "vocab_size": 50, "num_parameters": 1000, "peak_rss_train_mb": 300.0,
        "peak_rss_mb": 310.0, "rss_after_imports_mb": 200.0, "infer_examples_per_s": 100.0,
        "latency_s": [0.01, 0.02, 0.03],
    }


def test_summary_takes_medians_and_the_report_shows_ratios_to_the_reference() -> None:
    runs = [fake_run("reference", 0, 1000, 0.80), fake_run("reference", 1, 1200, 0.82),
            fake_run("reference", 2, 5000, 0.81), fake_run("seqnlp", 0, 4400, 0.83),
            fake_run("seqnlp", 1, 4000, 0.81), fake_run("seqnlp", 2, 4200, 0.82)]
    rows = {r["pipeline"]: r for r in bench.summarize(runs)}
    assert rows["reference"]["train_tokens_per_s"] == 1200 and rows["reference"]["repeats"] == 3
    assert rows["seqnlp"]["train_tokens_ratio"] == pytest.approx(4200 / 1200)
    assert rows["seqnlp"]["accuracy_delta_points"] == pytest.approx(1.0)
    assert rows["seqnlp"]["latency_ms"] == pytest.approx(20.0)
    report = {"machine": bench.machine_info(), "summary": list(rows.values()), "startup": {},
              "settings": {"repeats": 3, "seed": 13, "epochs": 1, "batch_size": 64, "infer_batch": 256,
                           "latency_samples": 3, "max_length": 400},
              "data": {"sst2": {"train_examples": 100, "eval_examples": 10, "eval_split": "dev"}}}
    markdown = bench.render_markdown(report)
    assert "| sst2 | lstm | seqnlp | fp32 | 1 | 4,200 | 3.50x |" in markdown
    assert "3.50x, +1.00 points -> **met**" in markdown


def test_bad_options_name_the_valid_choices() -> None:
    result = CliRunner().invoke(bench.main, ["--study", "speed"])
    assert result.exit_code == 2 and "main, packing, memory" in result.output
    with pytest.raises(click.BadParameter, match="sst2, imdb"):
        bench.parse_sizes(["yelp=10"], {}, "--train-size")
    assert bench.parse_sizes(["imdb=all", "sst2=7"], {"imdb": 5000}, "--train-size") == {"imdb": None, "sst2": 7}
    assert bench.parse_ints("1,50,all", "--pools", allow=("all",)) == [1, 50, "all"]


def test_peak_rss_is_read_in_mebibytes() -> None:
    assert 10 < bench.max_rss_mb() < 100_000


# --- the busy machine, auto threads and the quickstart study -------------------------------------------------


SETTINGS = {"seed": 13, "epochs": 1, "max_length": 400, "batch_size": 64, "infer_batch": 256, "latency_samples": 5,
            "keep_runs": False, "datasets": ["sst2"], "pipelines": ["reference", "seqnlp"], "cells": ["lstm"],
            "precisions": ["fp32"], "bucketings": ["pool"]}


def test_busy_levels_and_auto_threads_make_their_own_jobs() -> None:
    data = {"dataset": "sst2", "train_file": "t.jsonl", "eval_file": "e.jsonl", "train_examples": 1000}
    jobs = bench.main_jobs({**SETTINGS, "threads": ["auto", 1], "busy": [0, 2]}, {"sst2": data}, repeat=0)
    assert [(j["pipeline"], j["threads"], j["busy"]) for j in jobs] == [
        ("seqnlp", "auto", 0), ("reference", 1, 0), ("seqnlp", 1, 0),  # no reference for auto: it has no such setting
        ("seqnlp", "auto", 2), ("reference", 1, 2), ("seqnlp", 1, 2)]
    assert jobs[3]["id"] == "main-sst2-seqnlp-lstm-fp32-tauto-busy2-r0" and jobs[0]["id"].endswith("-tauto-r0")
    quick = bench.quickstart_jobs({**SETTINGS, "threads": ["auto", 1, 2], "busy": [0, 2]}, repeat=1)
    assert [(j["threads"], j["busy"]) for j in quick] == [("auto", 0), (1, 0), (2, 0), ("auto", 2), (1, 2), (2, 2)]
    assert len({j["id"] for j in quick}) == 6
    env = bench.child_env("auto", Path("out"))
    assert "OMP_NUM_THREADS" not in env and bench.child_env(2, Path("out"))["OMP_NUM_THREADS"] == "2"
    assert bench.parse_ints("auto,1,2", "--threads", allow=("auto",)) == ["auto", 1, 2]


def quickstart_run(threads: Any, busy: int, wall: float, repeat: int = 0) -> dict[str, Any]:
    return {"job": {"study": "quickstart", "dataset": "sms", "pipeline": "seqnlp", "cell": "lstm", "precision": "fp32",
                    "threads": threads, "variant": "", "busy": busy, "repeat": repeat, "train_examples": 0},
            "epochs": [{"seconds": wall / 2, "tokens_per_s": 1000.0, "examples_per_s": 50.0}], "accuracy": 0.98,
            "wall_s": wall, "thread_choices": ["1"] if threads == "auto" else [], "load_before": [2.0, 1, 1],
            "load_after": [4.0, 1, 1]}


def test_quickstart_rows_compare_auto_with_the_best_fixed_count_at_the_same_load() -> None:
    runs = [quickstart_run("auto", 2, 50.0), quickstart_run(1, 2, 40.0), quickstart_run(2, 2, 300.0),
            quickstart_run("auto", 0, 21.0), quickstart_run(1, 0, 26.0), quickstart_run(2, 0, 20.0),
            quickstart_run("auto", 0, 23.0, repeat=1)]
    stopped = {**quickstart_run("main", 2, 900.0), "error": "timed out after 900 s", "timed_out": True}
    rows = {(r["threads"], r["busy"]): r for r in bench.summarize(runs + [stopped])}
    assert rows["auto", 2]["wall_vs_best_fixed"] == pytest.approx(50 / 40)
    assert rows["main", 2]["repeats"] == 0 and rows["main", 2]["timed_out_s"] == [900]
    assert rows["auto", 0]["wall_s"] == 22.0 and rows["auto", 0]["wall_vs_best_fixed"] == pytest.approx(22 / 20)
    table = "\n".join(bench.quickstart_table(list(rows.values())))
    assert "| 2 | auto | 50.0 | 50.0-50.0 | 1.25x | 25.00 | 1.25x |" in table and "| 1 |" in table
    assert "| 2 | main | > 900 (stopped) |" in table
