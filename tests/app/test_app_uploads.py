"""The upload path of the app (graceful_ui.uploaded_files, graceful_ui.upload_specs), driven with bytes, and through AppTest.

Expected numbers come from the core run directly on the bundled folder, not from the app.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from graceful_core.errors import InputError
from tests.apptest import run_app


def _images(sample_spec) -> list[tuple[str, bytes]]:
    root = Path(sample_spec.data)
    return [(p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    """The same bytes for the same members (fixed member dates), so the same upload has the same content hash."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _zip_with_symlink() -> bytes:
    """A zip whose member is a symbolic link to /etc/passwd (Unix mode bits in external_attr)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("0/ok.png", b"x")
        info = zipfile.ZipInfo("0/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _models(sample_spec):
    from graceful_ui.uploaded_files import Upload

    return Upload("old.pt", Path(sample_spec.old).read_bytes()), Upload("new.pt", Path(sample_spec.new).read_bytes())


def test_zip_of_class_folders_gives_the_same_comparison(sample_spec, report):
    from graceful_ui import store
    from graceful_ui.spec_ids import resolve_spec
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload

    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, Upload("digits.zip", _zip(_images(sample_spec))))
    got = store.load_comparison(spec).to_report()
    for k in (
        "n_samples",
        "negative_flip_rate",
        "positive_flip_rate",
        "negative_flips",
        "positive_flips",
        "transition_matrix",
        "mcnemar_p_value",
    ):
        assert got[k] == report[k], k
    # the id goes in the URL and resolves back to the same files
    assert resolve_spec(spec.id) == spec


def test_manifest_with_a_zip_of_images(sample_spec, report):
    from graceful_ui import store
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload

    imgs = _images(sample_spec)
    manifest = pd.DataFrame(
        {
            "id": [n for n, _ in imgs],
            "path": [f"imgs/{n}" for n, _ in imgs],
            "label": [n.split("/")[0] for n, _ in imgs],
        }
    )
    old, new = _models(sample_spec)
    spec = spec_from_uploads(
        old,
        new,
        Upload("manifest.csv", manifest.to_csv(index=False).encode()),
        Upload("images.zip", _zip([(f"imgs/{n}", b) for n, b in imgs])),
    )
    got = store.load_comparison(spec).to_report()
    assert got["n_samples"] == report["n_samples"]
    assert got["negative_flips"] == report["negative_flips"]


@pytest.mark.parametrize(
    "kwargs, name, words",
    [
        ({"old": ("notes.txt", b"x"), "new": ("new.pt", b"x")}, "notes.txt", "expected a model file"),
        ({"old": ("old.pt", b""), "new": ("new.pt", b"x")}, "old.pt", "empty"),
        ({"old": ("old.pt", b"x"), "new": ("new.pt", b"x")}, "old.pt", "needs a dataset"),
        (
            {"old": ("a.csv", b"x"), "new": ("b.csv", b"x"), "dataset": ("m.csv", b"id,path,label\n")},
            "m.csv",
            "zip of its images",
        ),
        (
            {
                "old": ("a.csv", b"x"),
                "new": ("b.csv", b"x"),
                "dataset": ("m.csv", b"id,path,label\n"),
                "images": ("imgs.zip", _zip([("../../evil.png", b"x")])),
            },
            "imgs.zip",
            "unsafe path",
        ),
        (
            {
                "old": ("a.csv", b"x"),
                "new": ("b.csv", b"x"),
                "dataset": ("m.csv", b"id,path,label\n"),
                "images": ("imgs.zip", b"not a zip"),
            },
            "imgs.zip",
            "not a valid zip",
        ),
        (
            {
                "old": ("a.csv", b"x"),
                "new": ("b.csv", b"x"),
                "dataset": ("m.csv", b"id,path,label\n"),
                "images": ("imgs.zip", _zip_with_symlink()),
            },
            "imgs.zip",
            "symbolic link",
        ),
    ],
)
def test_bad_upload_combinations_name_the_file(kwargs, name, words):
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload

    ups = {k: Upload(*v) for k, v in kwargs.items()}
    with pytest.raises(InputError) as e:
        spec_from_uploads(**ups)
    assert e.value.message.startswith(f"{name}: ") and words in e.value.message


@pytest.mark.parametrize(
    "name, data, role",
    [
        ("broken.pt", b"definitely not a TorchScript zip", "model"),
        ("broken.onnx", b"\x00\x01garbage", "model"),
        ("data.zip", b"PK\x03\x04 truncated", "dataset"),
        ("photo.png", b"\x89PNG", "dataset"),
    ],
)
def test_check_upload_reports_the_uploaded_name_not_the_server_path(name, data, role):
    from graceful_ui.uploaded_files import Upload, check_upload

    with pytest.raises(InputError) as e:
        check_upload(Upload(name, data), role)
    assert e.value.message.startswith(f"{name}") and "app-uploads" not in e.value.message


def test_corrupt_image_inside_an_uploaded_zip_names_the_zip(sample_spec):
    from graceful_ui import store
    from graceful_ui.spec import user_message
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload

    imgs = _images(sample_spec)
    imgs[0] = (imgs[0][0], b"\x89PNG\r\n\x1a\n broken")
    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, Upload("broken-digits.zip", _zip(imgs)))
    with pytest.raises(InputError) as e:
        store.load_comparison(spec)
    msg = user_message(e.value, spec)
    assert msg.startswith("broken-digits.zip") and "app-uploads" not in msg


def test_upload_through_the_app_switches_the_comparison(sample_spec, report):
    at = run_app(page="inputs_page.py")
    old, new = _models(sample_spec)
    at.file_uploader(key="up_old").upload(old.name, old.data)
    at.file_uploader(key="up_new").upload(new.name, new.data)
    at.file_uploader(key="up_data").upload("digits.zip", _zip(_images(sample_spec))).run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="btn_compare").click().run()
    assert not at.exception and not at.error
    cmp = at.query_params.get("cmp")
    assert cmp.startswith("upload:")
    at.switch_page("app_pages/overview_page.py").run()
    nfr = {m.label: m.value for m in at.metric}["Negative flip rate (NFR)"]
    assert nfr == f"{100 * report['negative_flip_rate']:.2f} %"
    # a fresh session following the link opens the uploaded comparison
    again = run_app({"cmp": cmp})
    assert not again.warning and "digits.zip" in again.caption[0].value


def test_a_pq_manifest_works_in_the_upload_page_as_in_the_cli(sample_spec, report):
    """One definition of the manifest suffixes: the upload path accepts the `.pq` manifest the CLI accepts."""
    import graceful_core.io.datasets as datasets
    import graceful_core.vocabulary as vocabulary
    from graceful_ui import store, upload_specs, uploaded_files
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload, check_upload

    assert ".pq" in vocabulary.MANIFEST_SUFFIXES
    assert uploaded_files.MANIFEST_SUFFIXES is vocabulary.MANIFEST_SUFFIXES is datasets.MANIFEST_SUFFIXES
    assert upload_specs.MANIFEST_SUFFIXES is vocabulary.MANIFEST_SUFFIXES
    imgs = _images(sample_spec)
    manifest = pd.DataFrame(
        {
            "id": [n for n, _ in imgs],
            "path": [f"imgs/{n}" for n, _ in imgs],
            "label": [n.split("/")[0] for n, _ in imgs],
        }
    )
    buf = io.BytesIO()
    manifest.to_parquet(buf, index=False)
    pq = Upload("manifest.pq", buf.getvalue())
    check_upload(pq, "dataset")  # no "expected a .zip of class folders or a manifest" error
    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, pq, Upload("images.zip", _zip([(f"imgs/{n}", b) for n, b in imgs])))
    got = store.load_comparison(spec).to_report()
    assert got["n_samples"] == report["n_samples"] and got["negative_flips"] == report["negative_flips"]


# ------------------------------------------------------------ files that stay, comparisons that are not lost
@pytest.fixture(scope="module")
def onnx_new(sample_spec, tmp_path_factory) -> bytes:
    """The bundled new.pt exported to ONNX (same weights, so the same predictions)."""
    from graceful_core.training.export import convert_model_file

    out = tmp_path_factory.mktemp("onnx") / "new.onnx"
    convert_model_file(sample_spec.new, "onnx", out)
    return out.read_bytes()


def _texts(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _upload_three(at, sample_spec, zip_name: str = "digits.zip"):
    """Upload old.pt, new.pt and the test digits as ``zip_name`` (another name: another comparison id)."""
    old, new = _models(sample_spec)
    at.file_uploader(key="up_old").upload(old.name, old.data)
    at.file_uploader(key="up_new").upload(new.name, new.data)
    at.file_uploader(key="up_data").upload(zip_name, _zip(_images(sample_spec))).run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_uploads_stay_loaded_across_pages_and_one_can_be_replaced(sample_spec, onnx_new):
    from graceful_core.comparing.sources import compare_sources
    from graceful_ui.spec_ids import resolve_spec
    from tests.apptest import goto

    at = run_app(page="inputs_page.py")
    _upload_three(at, sample_spec)
    assert len(at.get("file_uploader")) == 2  # the three slots show their files; the manifest's images and the
    # optional reference are empty
    for page in ("flips_page.py", "versions_page.py", "inputs_page.py"):  # Streamlit empties uploaders on the way
        goto(at, page)
    text = _texts(at)
    assert len(at.get("file_uploader")) == 2
    for shown in (
        "**old.pt**",
        "**new.pt**",
        "**digits.zip**",
        "TorchScript model, 10 classes",
        "zip of class folders: 540 images, 10 classes",
    ):
        assert shown in text, shown

    at.button(key="replace_model_new").click().run()
    assert [u.label for u in at.get("file_uploader")][0].startswith("New (proposed) model or table: replace new.pt")
    at.file_uploader(key="up_new").upload("new.onnx", onnx_new).run()
    text = _texts(at)
    assert "**new.onnx**" in text and "ONNX model, 10 classes" in text and "**new.pt**" not in text
    assert "**old.pt**" in text and "**digits.zip**" in text  # the others were not uploaded again

    at.button(key="btn_compare").click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Overview"  # Compare goes to the new comparison's Overview
    spec = resolve_spec(at.session_state["cmp"])
    assert spec.id.startswith("upload:") and spec.label == "old.pt → new.onnx on digits.zip"
    expected = compare_sources(sample_spec.old, spec.new, sample_spec.data).summary
    shown = {m.label: m.value for m in at.metric}
    assert shown["Negative flip rate (NFR)"] == f"{100 * expected.negative_flip_rate:.2f} %"
    assert shown["New accuracy"] == f"{100 * expected.new_accuracy:.2f} %"

    goto(at, "versions_page.py")  # starts from the comparison on screen, offers every uploaded model
    picker = at.multiselect(key="w_versions")
    assert list(picker.value) == ["old.pt (uploaded)", "new.onnx (uploaded)"]
    assert {"new.pt (uploaded)", "old.pt", "new.pt", "v3.pt"} <= set(picker.options)
    models = next(d.value for d in at.dataframe if d.value.columns[0] == "model")
    assert list(models["model"]) == ["old.pt (uploaded)", "new.onnx (uploaded)"]
    assert any("digits.zip" in c.value for c in at.caption)


def test_clear_empties_one_slot_only(sample_spec):
    at = run_app(page="inputs_page.py")
    _upload_three(at, sample_spec)
    at.button(key="clear_dataset").click().run()
    assert [u.label for u in at.get("file_uploader")][0].startswith("Dataset")
    text = _texts(at)
    assert "**old.pt**" in text and "**new.pt**" in text and "**digits.zip**" not in text
    assert at.button(key="btn_compare").disabled  # two model files need a dataset
    assert any("needs a dataset" in c.value for c in at.caption)


def test_an_onnx_upload_error_says_so_in_plain_words_first():
    at = run_app(page="inputs_page.py")
    at.file_uploader(key="up_new").upload("broken.onnx", b"\x00\x01garbage").run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("broken.onnx: not an ONNX model ("), errors


def _gated_compare(monkeypatch, gate, calls):
    """store.compare_sources that reports progress, then waits for ``gate`` before comparing for real."""
    from graceful_ui import store

    real = store.compare_sources

    def slow(*args, progress=None, **kwargs):
        calls.append(args[1])
        progress("new.pt", 0, 540)
        assert gate.wait(120)
        return real(*args, progress=progress, **kwargs)

    monkeypatch.setattr(store, "compare_sources", slow)


def test_a_comparison_outlives_the_page_run_that_waited_for_it(sample_spec, report, monkeypatch):
    """A page run stopped while it waits (as Streamlit stops it on a page switch) does not stop the comparison."""
    import threading

    at = run_app(page="inputs_page.py")
    _upload_three(at, sample_spec, "digits-outlives.zip")
    gate, calls = threading.Event(), []
    _gated_compare(monkeypatch, gate, calls)
    at.button(key="btn_compare").click()
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=5)  # AppTest stops the run while it waits, as a page switch does
    cmp = at.session_state["cmp"]  # Compare's callback selected the new comparison before the run was stopped
    assert cmp.startswith("upload:")
    gate.set()
    # The stopped run's AppTest cannot run again (its element tree is stale), so the next page run is a
    # session following the link: the job is the server's, keyed by content, and it finished.
    again = run_app({"cmp": cmp}, page="overview_page.py")
    assert again.title[0].value == "Overview" and not again.error
    assert len(calls) == 1  # computed once: the stopped run's job finished and was found again
    nfr = {m.label: m.value for m in again.metric}["Negative flip rate (NFR)"]
    assert nfr == f"{100 * report['negative_flip_rate']:.2f} %"


def test_a_failing_comparison_says_why_and_the_previous_one_comes_back(sample_spec, report, monkeypatch):
    from graceful_ui import store

    at = run_app(page="inputs_page.py")
    assert at.session_state["cmp"] == sample_spec.id
    _upload_three(at, sample_spec, "digits-failing.zip")

    def broken(old, new, data, **kwargs):
        raise InputError(new, "a problem only the comparison finds")

    monkeypatch.setattr(store, "compare_sources", broken)
    at.button(key="btn_compare").click().run()
    assert not at.exception
    shown = [e.value.replace("\\", "") for e in at.error]  # file names are Markdown-escaped (shown literally)
    assert shown == [
        "new.pt: a problem only the comparison finds  \nShowing the previous comparison again: "
        "old.pt → new.pt on digits/test (bundled)."
    ]
    assert at.title[0].value == "Overview" and at.session_state["cmp"] == sample_spec.id
    nfr = {m.label: m.value for m in at.metric}["Negative flip rate (NFR)"]
    assert nfr == f"{100 * report['negative_flip_rate']:.2f} %"


def test_a_cancelled_comparison_says_so_and_the_previous_one_comes_back(sample_spec, report, monkeypatch):
    import threading

    from graceful_ui import store
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload

    at = run_app(page="inputs_page.py")
    _upload_three(at, sample_spec, "digits-cancel.zip")
    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, Upload("digits-cancel.zip", _zip(_images(sample_spec))))  # what Compare opens
    reported = threading.Event()

    def endless(*args, progress=None, **kwargs):
        while True:  # until Cancel: the progress callback raises then
            progress("old.pt", 1, 540)
            reported.set()
            threading.Event().wait(0.02)

    def press_cancel() -> None:  # what the Cancel button under the progress bar does, once the job runs
        assert reported.wait(120)
        store.comparison_job(spec).cancel()

    monkeypatch.setattr(store, "compare_sources", endless)
    canceller = threading.Thread(target=press_cancel)
    canceller.start()
    at.button(key="btn_compare").click().run()
    canceller.join(10)
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any(f"{spec.label} was cancelled" in w and "previous comparison again" in w for w in warnings), warnings
    assert at.title[0].value == "Overview" and at.session_state["cmp"] == sample_spec.id
    nfr = {m.label: m.value for m in at.metric}["Negative flip rate (NFR)"]
    assert nfr == f"{100 * report['negative_flip_rate']:.2f} %"


def test_a_pt2_upload_is_a_model_like_the_others(sample_spec, tmp_path):
    """``.pt2`` (torch.export) uploads are read as models: checked on arrival, compared, offered on Versions."""
    from graceful_core.training.export import convert_model_file
    from graceful_ui.uploaded_files import Upload, check_upload
    from tests.apptest import goto

    convert_model_file(sample_spec.new, "pt2", tmp_path / "new.pt2")
    stored = check_upload(Upload("new.pt2", (tmp_path / "new.pt2").read_bytes()), "model")
    assert stored.kind == "torch.export model, 10 classes, with embeddings" and stored.is_model

    at = run_app(page="inputs_page.py")
    old, _ = _models(sample_spec)
    at.file_uploader(key="up_old").upload(old.name, old.data)
    at.file_uploader(key="up_new").upload("new.pt2", (tmp_path / "new.pt2").read_bytes())
    at.file_uploader(key="up_data").upload("digits.zip", _zip(_images(sample_spec))).run()
    assert not at.error and "torch.export model, 10 classes" in _texts(at)
    at.button(key="btn_compare").click().run()
    assert at.title[0].value == "Overview" and not at.error
    goto(at, "versions_page.py")
    assert list(at.multiselect(key="w_versions").value) == ["old.pt (uploaded)", "new.pt2 (uploaded)"]


def _upload_models_and_manifest(sample_spec, manifest: pd.DataFrame, imgs):
    """The Choose-inputs page with the sample's two models, ``manifest`` and a zip of its images uploaded."""
    at = run_app(page="inputs_page.py")
    old, new = _models(sample_spec)
    at.file_uploader(key="up_old").upload(old.name, old.data)
    at.file_uploader(key="up_new").upload(new.name, new.data)
    at.file_uploader(key="up_data").upload("manifest.csv", manifest.to_csv(index=False).encode())
    return at.file_uploader(key="up_images").upload("images.zip", _zip([(f"imgs/{n}", b) for n, b in imgs])).run()


def test_a_manifest_and_its_images_through_the_page(sample_spec, report):
    imgs = _images(sample_spec)
    manifest = pd.DataFrame(
        {
            "id": [n for n, _ in imgs],
            "path": [f"imgs/{n}" for n, _ in imgs],
            "label": [n.split("/")[0] for n, _ in imgs],
        }
    )
    at = _upload_models_and_manifest(sample_spec, manifest, imgs)
    text = _texts(at)
    assert not at.error and "**manifest.csv**" in text and f"zip of {len(imgs)} files" in text
    at.button(key="btn_compare").click().run()
    assert at.title[0].value == "Overview" and not at.error
    shown = {m.label: m.value for m in at.metric}
    assert shown["Negative flip rate (NFR)"] == f"{100 * report['negative_flip_rate']:.2f} %"
    assert "manifest.csv" in at.caption[0].value


@pytest.mark.parametrize(
    "name, role, words",
    [
        ("old.pt", "dataset", "a model file or predictions table goes in the Old or New slot"),
        ("new.onnx", "images", "a model file or predictions table goes in the Old or New slot"),
        ("digits.zip", "model", "a dataset goes in the Dataset slot"),
    ],
)
def test_a_file_dropped_on_the_wrong_slot_says_where_it_goes(name, role, words):
    from graceful_ui.uploaded_files import Upload, check_upload

    with pytest.raises(InputError) as e:
        check_upload(Upload(name, b"some bytes"), role)
    assert e.value.message.startswith(f"{name}: expected ") and e.value.message.endswith(words)
    # control: the same file on its own slot gets past the suffix check (to the loader's own words)
    right = "dataset" if role == "model" else "model"
    with pytest.raises(InputError) as ok:
        check_upload(Upload(name, b"some bytes"), right)
    assert "got a '" not in ok.value.message and words not in ok.value.message


def test_a_dataset_that_fails_at_compare_loses_its_check_mark(sample_spec):
    imgs = _images(sample_spec)
    # no label column: the manifest is read, and fails, only at Compare (with its images)
    manifest = pd.DataFrame({"id": [n for n, _ in imgs], "path": [f"imgs/{n}" for n, _ in imgs]})
    at = _upload_models_and_manifest(sample_spec, manifest, imgs)
    assert not at.error and ":material/check_circle: **manifest.csv**" in _texts(at)  # control: checked so far
    at.button(key="btn_compare").click().run()
    assert at.title[0].value == "Overview" and at.error  # the comparison fails while it runs
    assert "manifest.csv" in at.error[0].value
    at.switch_page("app_pages/inputs_page.py").run()
    text = _texts(at)
    assert ":red[:material/error:] **manifest.csv**" in text and "last comparison failed on this file" in text, text
    assert ":material/check_circle: **old.pt**" in text  # the models were not at fault
