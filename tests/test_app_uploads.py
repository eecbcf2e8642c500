"""The upload path of the app (graceful_ui.inputs), driven with bytes, and through AppTest.

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
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
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
    from graceful_ui.inputs import Upload

    return Upload("old.pt", Path(sample_spec.old).read_bytes()), Upload("new.pt", Path(sample_spec.new).read_bytes())


def test_zip_of_class_folders_gives_the_same_comparison(sample_spec, report):
    from graceful_ui import store
    from graceful_ui.inputs import Upload, resolve_spec, spec_from_uploads

    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, Upload("digits.zip", _zip(_images(sample_spec))))
    got = store.load_comparison(spec).to_report()
    for k in ("n_samples", "negative_flip_rate", "positive_flip_rate", "negative_flips", "positive_flips",
              "transition_matrix", "mcnemar_p_value"):
        assert got[k] == report[k], k
    # the id goes in the URL and resolves back to the same files
    assert resolve_spec(spec.id) == spec


def test_manifest_with_a_zip_of_images(sample_spec, report):
    from graceful_ui import store
    from graceful_ui.inputs import Upload, spec_from_uploads

    imgs = _images(sample_spec)
    manifest = pd.DataFrame({"id": [n for n, _ in imgs], "path": [f"imgs/{n}" for n, _ in imgs],
                             "label": [n.split("/")[0] for n, _ in imgs]})
    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, Upload("manifest.csv", manifest.to_csv(index=False).encode()),
                             Upload("images.zip", _zip([(f"imgs/{n}", b) for n, b in imgs])))
    got = store.load_comparison(spec).to_report()
    assert got["n_samples"] == report["n_samples"]
    assert got["negative_flips"] == report["negative_flips"]


@pytest.mark.parametrize(
    "kwargs, name, words",
    [
        ({"old": ("notes.txt", b"x"), "new": ("new.pt", b"x")}, "notes.txt", "expected a model file"),
        ({"old": ("old.pt", b""), "new": ("new.pt", b"x")}, "old.pt", "empty"),
        ({"old": ("old.pt", b"x"), "new": ("new.pt", b"x")}, "old.pt", "needs a dataset"),
        ({"old": ("a.csv", b"x"), "new": ("b.csv", b"x"), "dataset": ("m.csv", b"id,path,label\n")}, "m.csv",
         "zip of its images"),
        ({"old": ("a.csv", b"x"), "new": ("b.csv", b"x"), "dataset": ("m.csv", b"id,path,label\n"),
          "images": ("imgs.zip", _zip([("../../evil.png", b"x")]))}, "imgs.zip", "unsafe path"),
        ({"old": ("a.csv", b"x"), "new": ("b.csv", b"x"), "dataset": ("m.csv", b"id,path,label\n"),
          "images": ("imgs.zip", b"not a zip")}, "imgs.zip", "not a valid zip"),
        ({"old": ("a.csv", b"x"), "new": ("b.csv", b"x"), "dataset": ("m.csv", b"id,path,label\n"),
          "images": ("imgs.zip", _zip_with_symlink())}, "imgs.zip", "symbolic link"),
    ],
)
def test_bad_upload_combinations_name_the_file(kwargs, name, words):
    from graceful_ui.inputs import Upload, spec_from_uploads

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
    from graceful_ui.inputs import Upload, check_upload

    with pytest.raises(InputError) as e:
        check_upload(Upload(name, data), role)
    assert e.value.message.startswith(f"{name}") and "app-uploads" not in e.value.message


def test_corrupt_image_inside_an_uploaded_zip_names_the_zip(sample_spec):
    from graceful_ui import store
    from graceful_ui.inputs import Upload, spec_from_uploads, user_message

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
    from graceful_ui import inputs, store
    from graceful_ui.inputs import Upload, check_upload, spec_from_uploads

    assert ".pq" in vocabulary.MANIFEST_SUFFIXES
    assert inputs.MANIFEST_SUFFIXES is vocabulary.MANIFEST_SUFFIXES is datasets.MANIFEST_SUFFIXES
    imgs = _images(sample_spec)
    manifest = pd.DataFrame({"id": [n for n, _ in imgs], "path": [f"imgs/{n}" for n, _ in imgs],
                             "label": [n.split("/")[0] for n, _ in imgs]})
    buf = io.BytesIO()
    manifest.to_parquet(buf, index=False)
    pq = Upload("manifest.pq", buf.getvalue())
    check_upload(pq, "dataset")  # no "expected a .zip of class folders or a manifest" error
    old, new = _models(sample_spec)
    spec = spec_from_uploads(old, new, pq, Upload("images.zip", _zip([(f"imgs/{n}", b) for n, b in imgs])))
    got = store.load_comparison(spec).to_report()
    assert got["n_samples"] == report["n_samples"] and got["negative_flips"] == report["negative_flips"]
