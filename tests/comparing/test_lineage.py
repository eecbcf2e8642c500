"""Model sets (graceful_core.comparing.lineage): matrices vs independent computations.

* every NFR/BTC/flip-count/accuracy/cross-test entry equals the pairwise
  ``python -m graceful_core compare Mi Mj --json`` report (the command line with its own cache);
* cross-test Hit@1 equals a brute-force NumPy leave-one-out cosine top-1 over embeddings
  obtained by running the TorchScript files directly (torch.jit.load + embed);
* regressions from v1 equal a direct set computation;
* hand-computed small cases for the synthetic path; bad sets exit 2 with one line.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from graceful_core.errors import InputError
from graceful_core.types import Predictions
from tests.helpers import brute_force_hit1, predictions, run_cli

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "sample_data" / "models"
DATA = ROOT / "sample_data" / "digits" / "test"
CHAIN = ["old", "new", "v3", "edge"]


def _need_samples() -> None:
    if not DATA.is_dir() or not all((MODELS / f"{m}.pt").is_file() for m in CHAIN):
        pytest.skip("bundled sample models/digits are missing")


@pytest.fixture(scope="module")
def paths():
    _need_samples()
    return [str(MODELS / f"{m}.pt") for m in CHAIN]


@pytest.fixture(scope="module")
def matrix(paths, tmp_path_factory):
    """The matrix report as written by ``python -m graceful_core matrix ... --json``."""
    tmp = tmp_path_factory.mktemp("matrix")
    out = tmp / "matrix.json"
    r = run_cli("matrix", *paths, "--data", str(DATA), "--json", str(out), cache=tmp / "cache", check=True)
    assert "cross-test Hit@1" in r.stdout
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def pair_reports(paths, tmp_path_factory):
    """``compare Mi Mj --json`` for every pair i < j (the command line run one pair after another, with their own cache).

    One report of i -> j also fixes j -> i: the negative flips of j -> i are the positive
    flips of i -> j, and BTC(j, i) = #both right / #j right.
    """
    tmp = tmp_path_factory.mktemp("pairs")
    cache = tmp / "cache"

    def one(ij):
        i, j = ij
        out = tmp / f"{i}-{j}.json"
        run_cli("compare", paths[i], paths[j], "--data", str(DATA), "--json", str(out), cache=cache, check=True)
        return ij, json.loads(out.read_text())

    return dict(map(one, itertools.combinations(range(len(paths)), 2)))


@pytest.fixture(scope="module")
def direct():
    """Each model run directly with torch: (ids, labels, {name: (pred, embedding)})."""
    _need_samples()
    import torch
    from PIL import Image

    from graceful_core.transforms import preprocess
    from graceful_core.types import ModelInfo

    files = sorted(DATA.glob("*/*.png"))
    ids = [f.relative_to(DATA).as_posix() for f in files]
    images = [Image.open(f) for f in files]
    for im in images:
        im.load()
    out = {}
    for m in CHAIN:
        extra = {"graceful.json": ""}
        net = torch.jit.load(str(MODELS / f"{m}.pt"), map_location="cpu", _extra_files=extra)
        meta = json.loads(extra["graceful.json"])
        info = ModelInfo(
            name=meta["name"],
            input_size=tuple(meta["input_size"]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            classes=tuple(meta["classes"]),
        )
        x = torch.from_numpy(np.stack([preprocess(im, info) for im in images]))
        with torch.no_grad():
            emb = net.embed(x).numpy().astype(np.float64)
            logits = net(x).numpy()
        classes = list(info.classes)
        labels = np.array([classes.index(i.split("/")[0]) for i in ids])
        out[m] = (logits.argmax(axis=1), emb)
    return np.array(ids), labels, out


# --------------------------------------------------------------------------- sample lineage
def test_matrix_entries_equal_pairwise_compare_reports(matrix, pair_reports):
    m = len(CHAIN)
    assert matrix["models"] == [f"{c}.pt" for c in CHAIN]
    n = matrix["n_samples"]
    assert n == 540
    exact = {"abs": 1e-15}
    for (i, j), r in pair_reports.items():
        assert r["n_samples"] == n
        # i -> j, straight from the report
        assert matrix["negative_flip_rate"][i][j] == pytest.approx(r["negative_flip_rate"], **exact), (i, j)
        assert matrix["backward_trust_compatibility"][i][j] == pytest.approx(
            r["backward_trust_compatibility"], **exact
        ), (i, j)
        assert matrix["negative_flips"][i][j] == len(r["negative_flips"]), (i, j)
        # j -> i: its negative flips are i -> j's positive flips
        assert matrix["negative_flip_rate"][j][i] == pytest.approx(r["positive_flip_rate"], **exact), (j, i)
        assert matrix["negative_flips"][j][i] == len(r["positive_flips"]), (j, i)
        right_i, right_j = round(n * r["old"]["accuracy"]), round(n * r["new"]["accuracy"])
        both = right_i - len(r["negative_flips"])
        assert matrix["backward_trust_compatibility"][j][i] == pytest.approx(both / right_j, **exact), (j, i)
        assert matrix["accuracy"][i] == pytest.approx(r["old"]["accuracy"], **exact)
        assert matrix["accuracy"][j] == pytest.approx(r["new"]["accuracy"], **exact)
        top1 = r["compatibility"]["top1"]
        assert matrix["cross_top1"][j][i] == pytest.approx(top1["new_old"], **exact), (j, i)
        assert matrix["cross_top1"][i][j] == pytest.approx(top1["old_new"], **exact), (i, j)
        assert matrix["cross_top1"][i][i] == pytest.approx(top1["old_old"], **exact)
        assert matrix["cross_top1"][j][j] == pytest.approx(top1["new_new"], **exact)
    for i in range(m):  # the diagonal: a model never flips against itself
        assert matrix["negative_flip_rate"][i][i] == 0.0 and matrix["backward_trust_compatibility"][i][i] == 1.0
    # lineage steps are the consecutive pairwise reports
    for k, step in enumerate(matrix["lineage"]["steps"]):
        r = pair_reports[k, k + 1]
        assert step["negative_flip_rate"] == pytest.approx(r["negative_flip_rate"], **exact)
        assert step["negative_flips"] == len(r["negative_flips"])
        assert step["new_accuracy"] == pytest.approx(r["new"]["accuracy"], **exact)
    # index sharing = the BCT criterion on the pairwise reports' top-1, both directions
    expected = set()
    for (i, j), r in pair_reports.items():
        t = r["compatibility"]["top1"]
        if t["new_old"] > t["old_old"]:
            expected.add((CHAIN[j] + ".pt", CHAIN[i] + ".pt"))
        if t["old_new"] > t["new_new"]:
            expected.add((CHAIN[i] + ".pt", CHAIN[j] + ".pt"))
    assert {(s["query"], s["gallery"]) for s in matrix["can_share_index"]} == expected
    assert ("v3.pt", "edge.pt") in expected


def test_edge_was_trained_against_v3_and_shares_its_embedding_size(matrix):
    assert matrix["embedding_dims"] == [64, 64, 64, 64]
    v3, edge = CHAIN.index("v3"), CHAIN.index("edge")
    # BCT against v3 makes edge's queries land far closer to v3's gallery than to an unrelated one
    assert matrix["cross_top1"][edge][v3] > 0.5 > matrix["cross_top1"][edge][CHAIN.index("new")]


def test_cross_test_hit1_equals_brute_force_on_directly_run_models(matrix, direct):
    _ids, labels, out = direct
    for q, g in itertools.product(range(len(CHAIN)), repeat=2):
        expected = brute_force_hit1(out[CHAIN[q]][1], out[CHAIN[g]][1], labels)
        assert matrix["cross_top1"][q][g] == pytest.approx(expected, abs=1e-12), (CHAIN[q], CHAIN[g])


def test_regressions_from_first_equal_a_set_computation(matrix, direct):
    ids, labels, out = direct
    right = {m: set(ids[out[m][0] == labels]) for m in CHAIN}
    wrong = {m: set(ids[out[m][0] != labels]) for m in CHAIN}
    lin = matrix["lineage"]
    assert lin["regressions_from_first"] == [len(right[CHAIN[0]] & wrong[m]) for m in CHAIN]
    ever = [len(right[CHAIN[0]] & set().union(*(wrong[m] for m in CHAIN[1 : k + 1]))) for k in range(len(CHAIN))]
    assert lin["ever_regressed_from_first"] == ever
    assert lin["regressed_from_first_ids"] == sorted(right[CHAIN[0]] & wrong[CHAIN[-1]])
    assert [matrix["accuracy"][k] for k in range(len(CHAIN))] == pytest.approx(
        [float(np.mean(out[m][0] == labels)) for m in CHAIN], abs=1e-15
    )


def test_matrix_text_names_every_model_and_the_chain(paths, matrix):
    from graceful_core.comparing.lineage import model_matrix_report
    from graceful_core.report.lineage_text import matrix_text

    model_set = model_matrix_report(paths, DATA)
    assert model_set.to_report() == matrix  # the CLI's JSON is the model set's report
    text = matrix_text(model_set)
    assert "old.pt -> new.pt -> v3.pt -> edge.pt" in text
    for name in matrix["models"]:
        assert name in text


# --------------------------------------------------------------------------- bad sets (CLI)
def test_cli_one_model_exits_2_with_one_line(paths, tmp_path):
    r = run_cli(
        "matrix", paths[0], "--data", str(DATA), "--json", str(tmp_path / "m.json"), cache=tmp_path / "c", check=False
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: ") and "at least 2 models" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def _table(path: Path, ids: list[str], labels: list[str], preds: list[str]) -> str:
    import pandas as pd

    pd.DataFrame({"id": ids, "label": labels, "pred": preds}).to_csv(path, index=False)
    return str(path)


def test_cli_tables_from_different_datasets_exit_2(tmp_path):
    a = _table(tmp_path / "a.csv", ["x/1.png", "x/2.png"], ["0", "1"], ["0", "1"])
    b = _table(tmp_path / "b.csv", ["y/1.png", "y/2.png"], ["0", "1"], ["1", "1"])
    r = run_cli("matrix", a, b, "--json", str(tmp_path / "m.json"), cache=tmp_path / "c", check=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def test_cli_table_not_from_the_dataset_exits_2(paths, tmp_path):
    t = _table(tmp_path / "t.csv", ["elsewhere/1.png"], ["0"], ["0"])
    r = run_cli("matrix", paths[0], t, "--data", str(DATA), cache=tmp_path / "c", check=False)
    assert r.returncode == 2 and "t.csv" in r.stderr and "Traceback" not in r.stderr


def test_same_file_twice_is_an_input_error(paths):
    from graceful_core.comparing.lineage import model_matrix_report

    with pytest.raises(InputError, match="named twice"):
        model_matrix_report([paths[0], paths[0]], DATA)


# --------------------------------------------------------------------------- synthetic, by hand
def _preds(pred, labels, emb=None, source="m") -> Predictions:
    n = len(pred)
    return predictions(
        [f"s{i}" for i in range(n)], pred, classes=["a", "b"], labels=labels, embedding=emb, source=source
    )


def test_hand_computed_three_model_chain():
    from graceful_core.comparing.lineage import model_matrix

    y = [0, 0, 1, 1, 0, 1]
    v1 = [0, 0, 1, 0, 1, 1]  # right: 0,1,2,5 (4 of 6)
    v2 = [0, 1, 1, 1, 0, 1]  # right: 0,2,3,4,5; v1 -> v2 flips: 1 (neg), 3,4 (pos)
    v3 = [1, 1, 1, 1, 0, 0]  # right: 2,3,4;     v2 -> v3 flips: 0,5 (neg)
    r = model_matrix([_preds(v1, y), _preds(v2, y), _preds(v3, y)], ["v1", "v2", "v3"])
    assert r.accuracy == pytest.approx([4 / 6, 5 / 6, 3 / 6])
    # NF(i, j) = |right_i minus right_j|: right sets {0,1,2,5}, {0,2,3,4,5}, {2,3,4}
    assert r.negative_flips == ((0, 1, 3), (2, 0, 2), (2, 0, 0))
    assert r.negative_flip_rate[0] == pytest.approx([0, 1 / 6, 3 / 6])
    assert r.negative_flip_rate[2][0] == pytest.approx(2 / 6)
    assert r.backward_trust_compatibility[0] == pytest.approx([1.0, 3 / 4, 1 / 4])
    assert r.backward_trust_compatibility[1][2] == pytest.approx(3 / 5)
    lin = r.lineage
    assert [s.negative_flips for s in lin.steps] == [1, 2]
    assert lin.regressions_from_first == (0, 1, 3)  # v1 right and vk wrong: {}, {1}, {0,1,5}
    assert lin.ever_regressed_from_first == (0, 1, 3)
    assert lin.regressed_from_first_ids == ("s0", "s1", "s5")
    assert r.cross_top1 == ((None,) * 3,) * 3 and r.cross_top1_reason[0][1].startswith("no embedding")
    assert r.can_share_index == ()
    rep = r.to_report()  # the JSON of `matrix --json`: same numbers, lists, None for undefined
    assert rep["negative_flips"] == [[0, 1, 3], [2, 0, 2], [2, 0, 0]] and rep["can_share_index"] == []
    assert rep["lineage"]["steps"][0] == {
        "old": "v1",
        "new": "v2",
        "old_accuracy": pytest.approx(4 / 6),
        "new_accuracy": pytest.approx(5 / 6),
        "negative_flip_rate": pytest.approx(1 / 6),
        "negative_flips": 1,
        "positive_flips": 2,
    }


def test_ever_regressed_grows_when_a_later_model_fixes_a_regression():
    from graceful_core.comparing.lineage import model_matrix

    y = [0, 1, 0]
    r = model_matrix([_preds([0, 1, 0], y), _preds([1, 1, 0], y), _preds([0, 1, 1], y)], ["a", "b", "c"])
    assert r.lineage.regressions_from_first == (0, 1, 1)  # b breaks s0; c fixes s0 but breaks s2
    assert r.lineage.ever_regressed_from_first == (0, 1, 2)


def test_cross_top1_none_where_sizes_differ_and_sharing_by_hand():
    from graceful_core.comparing.lineage import model_matrix

    y = np.array([0, 0, 1, 1])
    # bad: every row's nearest other row has the other label -> self top-1 = 0 (checked by hand)
    bad = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1]])
    # g: two clean clusters -> self top-1 = 1
    g = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    # good: each query sits on a same-label row of bad's gallery (own row excluded) -> good -> bad = 1
    good = np.array([[0, 1], [1, 0], [0.1, 1], [1, 0.1]])
    wide = np.ones((4, 3))
    embs = {"bad": bad, "g": g, "good": good, "wide": wide}
    r = model_matrix([_preds([0, 0, 1, 1], y, e.astype(np.float32)) for e in embs.values()], list(embs))
    c = r.cross_top1
    assert c[0][0] == pytest.approx(0.0) and c[1][1] == pytest.approx(1.0) and c[2][0] == pytest.approx(1.0)
    for q, g_ in itertools.product(range(3), repeat=2):
        assert c[q][g_] == pytest.approx(brute_force_hit1(*(list(embs.values())[k] for k in (q, g_)), y))
    assert c[0][3] is None and c[3][1] is None and "sizes differ" in r.cross_top1_reason[3][1]
    assert c[3][3] is not None  # a model always has a self-test
    names = list(embs)
    expected = {
        (names[q], names[g_])
        for q, g_ in itertools.product(range(3), repeat=2)
        if q != g_
        and brute_force_hit1(embs[names[q]], embs[names[g_]], y) > brute_force_hit1(embs[names[g_]], embs[names[g_]], y)
    }
    assert ("good", "bad") in expected
    assert {(s.query, s.gallery) for s in r.can_share_index} == expected


def test_fewer_than_two_models_is_an_input_error():
    from graceful_core.comparing.lineage import model_matrix, model_matrix_report

    with pytest.raises(InputError, match="at least 2"):
        model_matrix([_preds([0], [0])], ["a"])
    with pytest.raises(InputError, match="at least 2"):
        model_matrix_report([str(MODELS / "old.pt")], DATA)
