"""Choose inputs: a bundled pair, or your own files (kept for the session: switch pages, come back, replace one)."""

import logging
from pathlib import Path

import streamlit as st

from graceful_core.errors import InputError
from graceful_core.report.sentences import headline, unlabelled_headline
from graceful_core.vocabulary import MANIFEST_SUFFIXES, METRICS, MODEL_SUFFIXES, file_size
from graceful_ui.bundled_specs import RESEED_MARK, bundled_reference, bundled_specs
from graceful_ui.fmt import md
from graceful_ui.spec import user_message
from graceful_ui.store import labelled
from graceful_ui.upload_specs import spec_from_files
from graceful_ui.uploaded_files import ROLE_SUFFIXES, Upload, check_upload
from graceful_ui.uploads import clear_file, session_files, set_file
from graceful_ui.widgets import COMPARE_FAILURE, open_comparison, page_comparison, start_comparison

log = logging.getLogger("graceful_ui")
ss = st.session_state

#: The upload slots: role -> (file uploader's key, label, what check_upload checks it as).
SLOTS = {
    "model_old": ("up_old", "Old (deployed) model or table", "model"),
    "model_new": ("up_new", "New (proposed) model or table", "model"),
    "dataset": ("up_data", "Dataset (.zip of class folders, or a manifest)", "dataset"),
    "images": ("up_images", "Images for a manifest (.zip)", "images"),
    "reference": ("up_reference", "Optional: the old model retrained with another seed (churn floor)", "model"),
}
#: Session keys: role -> the upload's error message; role -> True while its file is being replaced.
ERRORS, REPLACING = "_upload_errors", "_upload_replacing"
#: Session key: the roles whose file the last Compare failed on (their mark turns red until replaced).
FAILED = "_compare_failed"

st.title("Choose inputs")
spec, comp = page_comparison()
if spec is not None and comp is not None:  # app.py sets both or neither
    line = headline(comp) if labelled(comp) else unlabelled_headline(comp)
    st.info(f"**Now showing:** {md(spec.label)}  \n{line}")

st.subheader("Bundled sample")
specs = bundled_specs()
if specs:
    ids = [s.id for s in specs]
    current = ss.get("cmp") or ""
    with_ref = current.endswith(RESEED_MARK)
    base = current[: -len(RESEED_MARK)] if with_ref else current
    ss["w_bundled"] = base if base in ids else None
    ss["w_reference"] = with_ref

    def open_bundled() -> None:
        if ss["w_bundled"] is not None:
            chosen = next(s for s in specs if s.id == ss["w_bundled"])
            ref = ss.get("w_reference") and bundled_reference(chosen)
            open_comparison(chosen.id + (RESEED_MARK if ref else ""))

    st.radio(
        "Bundled pair",
        ids,
        format_func=lambda i: next(s.label for s in specs if s.id == i),
        key="w_bundled",
        on_change=open_bundled,
    )
    chosen = next((s for s in specs if s.id == ss["w_bundled"]), None)
    reference = None if chosen is None else bundled_reference(chosen)
    if reference is not None:
        ref_name = Path(reference).name
        st.checkbox(
            f"Measure the churn floor against {ref_name} (the old model retrained with another seed)",
            key="w_reference",
            on_change=open_bundled,
            help=METRICS["churn_floor"].help,
        )
else:
    st.warning("No bundled sample data found (sample_data/ is missing); upload your own files below.")

st.subheader("Upload your own")
limit = st.get_option("server.maxUploadSize")
st.markdown(
    f"Two **model files** (torch.export `.pt2`, TorchScript `.pt`, ONNX `.onnx`) or two **predictions tables** "
    f"(`.csv`, `.parquet`), and a **dataset**: a `.zip` of class folders (`<class>/<image>`), or a manifest "
    f"(`.csv`/`.parquet` with `id`, `path`, `label`) plus a `.zip` of its images. Tables need no dataset if they "
    f"carry a `label` column. **Each file may be up to {limit} MB** (`server.maxUploadSize` in "
    f"`.streamlit/config.toml`). Your files stay loaded while you use the other pages: replace or clear one "
    f"without uploading the others again."
)
files = session_files()
errors: dict[str, str] = ss.setdefault(ERRORS, {})


def failed_roles(message: str) -> set[str]:
    """The slots whose file a failure message names (it starts with the file's name, or names a member of it)."""
    return {
        r
        for r, f in files.items()
        if any(message.startswith(n) or f"{n}/" in message or f"{n}:" in message for n in (f.name, md(f.name)))
    }


failure = ss.pop(COMPARE_FAILURE, None)
if failure:  # a comparison of these files failed while it ran (on the Overview)
    ss[FAILED] = failed_roles(failure)
replacing: dict[str, bool] = ss.setdefault(REPLACING, {})


def on_upload(role: str) -> None:
    """Keep a file as soon as it arrives: store it on the server, check it, load it into its slot."""
    f = ss.get(SLOTS[role][0])
    if f is None:  # the user removed a rejected file from the uploader
        errors.pop(role, None)
        return
    up = Upload(f.name, f.getvalue())
    try:
        stored = check_upload(up, SLOTS[role][2])
    except InputError as e:
        errors[role] = e.message
    except Exception as e:  # a loader bug on odd input: still name the file, never a traceback box
        log.exception("upload check failed")
        errors[role] = f"{up.name}: could not be read ({type(e).__name__}: {e})"
    else:
        errors.pop(role, None)
        replacing.pop(role, None)
        ss.get(FAILED, set()).discard(role)
        set_file(role, stored)


def on_replace(role: str, on: bool) -> None:
    replacing[role] = on
    errors.pop(role, None)


def on_clear(role: str) -> None:
    clear_file(role)
    ss.get(FAILED, set()).discard(role)
    errors.pop(role, None)
    replacing.pop(role, None)


def slot(col, role: str) -> None:
    """One upload slot: the loaded file (name, size, kind) with Replace and Clear, or a file uploader."""
    key, label, check_as = SLOTS[role]
    loaded = files.get(role)
    with col.container(border=True):
        if loaded is not None and not replacing.get(role):
            st.markdown(f"**{label}**")
            failed = role in ss.get(FAILED, set())
            mark = ":red[:material/error:]" if failed else ":material/check_circle:"
            st.markdown(
                f"{mark} **{md(loaded.name)}** · {file_size(loaded.size)}  \n{loaded.kind}"
            )  # the kind is graceful's words and counts, no user text
            if failed:
                st.markdown(":red[The last comparison failed on this file; replace it, or compare again.]")
            b1, b2, _ = st.columns([1, 1, 2])
            b1.button(
                "Replace",
                key=f"replace_{role}",
                on_click=on_replace,
                args=(role, True),
                width="stretch",
                help=f"Upload another file instead of {loaded.name}; the other files stay loaded.",
            )
            b2.button(
                "Clear", key=f"clear_{role}", on_click=on_clear, args=(role,), width="stretch", help="Unload this file."
            )
        else:
            shown = f"{label}: replace {loaded.name}" if loaded is not None else label
            # any file is taken and checked here (check_upload): the browser's own refusal only says
            # "files are not allowed", and its list of accepted types is cut on narrow slots
            st.file_uploader(
                shown,
                key=key,
                on_change=on_upload,
                args=(role,),
                help="Accepted: " + ", ".join(ROLE_SUFFIXES[check_as]),
            )
            if loaded is not None:
                st.button(f"Keep {loaded.name}", key=f"keep_{role}", on_click=on_replace, args=(role, False))
        if role in errors:
            st.error(errors[role], icon=":material/block:")
        if role == "images":
            st.caption("Only with a manifest: the images its `path` column points to.")
        if role == "reference":
            st.caption(f"{METRICS['churn_floor'].label}: {METRICS['churn_floor'].help}")


c1, c2 = st.columns(2)
slot(c1, "model_old")
slot(c2, "model_new")
c3, c4 = st.columns(2)
slot(c3, "dataset")
slot(c4, "images")
c5, _ = st.columns(2)
slot(c5, "reference")


def on_compare() -> None:
    """Start the comparison on the server and go to its Overview (it shows the progress)."""
    dataset = files.get("dataset")
    is_manifest = dataset is not None and dataset.suffix in MANIFEST_SUFFIXES
    new_spec = None
    try:
        new_spec = spec_from_files(
            files["model_old"],
            files["model_new"],
            dataset,
            files.get("images") if is_manifest else None,
            files.get("reference"),
        )
        start_comparison(new_spec)
    except InputError as e:
        ss["_compare_error"] = msg = user_message(e, new_spec)
        ss[FAILED] = failed_roles(msg)
    except Exception as e:  # a core bug on odd input: report it, keep the previous comparison
        log.exception("upload comparison failed")
        ss["_compare_error"] = (
            f"{md(files['model_old'].name)} → {md(files['model_new'].name)}: could not be "
            f"compared ({type(e).__name__}: {e})"
        )
    else:
        ss.pop(FAILED, None)
        open_comparison(new_spec.id, page="overview")


ready = "model_old" in files and "model_new" in files
needs_data = (
    ready
    and "dataset" not in files
    and any(files[r].suffix in MODEL_SUFFIXES for r in ("model_old", "model_new", "reference") if r in files)
)
ok = not errors and not needs_data
st.button(
    "Compare the uploaded files", type="primary", disabled=not (ready and ok), key="btn_compare", on_click=on_compare
)
compare_error = ss.pop("_compare_error", None)
if compare_error:
    st.error(compare_error, icon=":material/block:")
if not ready:
    st.caption("Upload both an old and a new file to compare them.")
elif needs_data:
    st.caption("A model file needs a dataset to run on: upload a .zip of class folders (or a manifest and its images).")
