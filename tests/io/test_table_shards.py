"""A folder or glob of Parquet shards is one predictions table wherever a table is accepted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from graceful_core.cli.commands import main
from graceful_core.comparing.sources import comparison_key, is_table
from graceful_core.errors import InputError
from graceful_core.io.tables import is_table_source, table_display_name, table_files, table_sha256

ROOT = Path(__file__).resolve().parents[2]
OLD_CSV = ROOT / "sample_data" / "predictions" / "old.csv"
NEW_CSV = ROOT / "sample_data" / "predictions" / "new.csv"


def _shard(csv_path: Path, folder: Path, cuts: list[int]) -> Path:
    """The CSV table as Parquet shards cut at the given rows (natural order: part-2 before part-10)."""
    t = pacsv.read_csv(
        csv_path,
        convert_options=pacsv.ConvertOptions(column_types={"id": "string", "label": "string", "pred": "string"}),
    )
    folder.mkdir()
    bounds = [0, *cuts, t.num_rows]
    for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        pq.write_table(t.slice(a, b - a), folder / f"part-{j * 5}.parquet")  # 0, 5, 10: natural order matters
    return folder


def test_table_files_kinds_order_and_errors(tmp_path):
    folder = _shard(OLD_CSV, tmp_path / "old", [100, 101, 400])
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-x.parquet.crc").write_text("")
    kind, files = table_files(folder)
    assert kind == "parquet" and [Path(f).name for f in files] == [
        "part-0.parquet",
        "part-5.parquet",
        "part-10.parquet",
        "part-15.parquet",
    ]
    kind, files = table_files(str(folder / "part-*.parquet"))
    assert [Path(f).name for f in files][-1] == "part-15.parquet"
    assert table_files(OLD_CSV) == ("csv", (str(OLD_CSV),))
    assert (
        is_table_source(folder) and is_table_source(str(folder / "*.parquet")) and not is_table_source(ROOT / "app.py")
    )
    assert is_table(folder) and not is_table(tmp_path)  # a folder without Parquet files is no table
    assert table_display_name(folder) == "old" and table_display_name(str(folder / "part-*.parquet")) == "old"
    with pytest.raises(InputError, match="no file matches this pattern"):
        table_files(str(tmp_path / "x-*.parquet"))
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "a.csv").write_text("id,pred\na,0\n")
    (tmp_path / "mix" / "b.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="both CSV and Parquet"):
        table_files(str(tmp_path / "mix" / "*"))


def test_table_digest_covers_every_shard(tmp_path):
    folder = _shard(OLD_CSV, tmp_path / "old", [200])
    before = table_sha256(folder)
    assert table_sha256(str(folder / "part-*.parquet")) == before and len(before) == 64
    from graceful_core.io.hashing import file_sha256

    assert table_sha256(OLD_CSV) == file_sha256(OLD_CSV)  # one file: its own digest (cache keys unchanged)
    t = pq.read_table(folder / "part-5.parquet")
    pq.write_table(t.slice(1), folder / "part-5.parquet")
    assert table_sha256(folder) != before
    assert comparison_key(folder, NEW_CSV, None) != comparison_key(OLD_CSV, NEW_CSV, None)


def test_cli_compare_reads_shards_like_the_single_table(tmp_path):
    """Same report (but the names) from a folder, a glob and the original CSV."""
    folder = _shard(OLD_CSV, tmp_path / "old", [7, 300])
    reports = []
    for old in (OLD_CSV, folder, folder / "part-*.parquet"):
        out = tmp_path / f"r{len(reports)}.json"
        assert main(["compare", str(old), str(NEW_CSV), "--json", str(out)]) == 0
        rep = json.loads(out.read_text())
        rep["old"].pop("name")
        reports.append(rep)
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["n_samples"] == 540 and reports[0]["negative_flips"] == ["2/1742.png", "3/0985.png", "9/0037.png"]


def test_streamed_compare_of_shards_equals_the_in_memory_report(tmp_path):
    from graceful_core.comparing.sources import compare_sources
    from graceful_core.streaming import compare_tables_streamed

    old = _shard(OLD_CSV, tmp_path / "old", [1, 2, 3, 250])
    new = _shard(NEW_CSV, tmp_path / "new", [270])
    rep = compare_sources(OLD_CSV, NEW_CSV).to_report()
    r = compare_tables_streamed(old, str(new / "*.parquet"), batch_rows=64)
    assert r.n_samples == rep["n_samples"] and r.counts.negative_flips == rep["n_negative_flips"]
    assert (
        list(r.negative_flips.first) == rep["negative_flips"] and list(r.positive_flips.first) == rep["positive_flips"]
    )
    assert r.transition_matrix.tolist() == rep["transition_matrix"]
    assert r.counts.negative_flips_confident == rep["negative_flips_confident"]
    assert [int(x) for x in r.counts.support_per_class] == [c["support"] for c in rep["per_class"]]
    assert r.embeddings_skipped and os.path.isdir(old)
    assert np.array_equal(r.counts.negative_flips_per_class, [c["negative_flips"] for c in rep["per_class"]])
