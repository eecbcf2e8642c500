"""Choose inputs: a bundled pair, or uploaded models/tables and a dataset."""

import logging

import streamlit as st

from graceful_core.errors import InputError
from graceful_core.summary import headline
from graceful_core.vocabulary import MANIFEST_SUFFIXES, MODEL_SUFFIXES, TABLE_SUFFIXES, ZIP_SUFFIXES
from graceful_ui.fmt import md
from graceful_ui.inputs import Upload, bundled_specs, check_upload, spec_from_uploads, user_message
from graceful_ui.state import select_comparison
from graceful_ui.widgets import compute, page_comparison

log = logging.getLogger("graceful_ui")

st.title("Choose inputs")
spec, comp = page_comparison()
if comp is not None:
    st.info(f"**Now showing:** {md(spec.label)}  \n{headline(comp)}")

st.subheader("Bundled sample")
specs = bundled_specs()
if specs:
    ids = [s.id for s in specs]
    current = st.session_state.get("cmp")
    st.session_state["w_bundled"] = current if current in ids else None

    def on_bundled() -> None:
        if st.session_state["w_bundled"] is not None:
            select_comparison(st.session_state["w_bundled"])

    st.radio("Bundled pair", ids, format_func=lambda i: next(s.label for s in specs if s.id == i), key="w_bundled",
             on_change=on_bundled)
else:
    st.warning("No bundled sample data found (sample_data/ is missing); upload your own files below.")

st.subheader("Upload your own")
limit = st.get_option("server.maxUploadSize")
st.markdown(
    f"Two **model files** (TorchScript `.pt`, ONNX `.onnx`) or two **predictions tables** (`.csv`, `.parquet`), "
    f"and a **dataset**: a `.zip` of class folders (`<class>/<image>`), or a manifest (`.csv`/`.parquet` with "
    f"`id`, `path`, `label`) plus a `.zip` of its images. Tables need no dataset if they carry a `label` column. "
    f"**Each file may be up to {limit} MB** (`server.maxUploadSize` in `.streamlit/config.toml`)."
)

model_types = [s.lstrip(".") for s in MODEL_SUFFIXES + TABLE_SUFFIXES]
c1, c2 = st.columns(2)
old_f = c1.file_uploader("Old (deployed) model or table", type=model_types, key="up_old")
new_f = c2.file_uploader("New (proposed) model or table", type=model_types, key="up_new")
c3, c4 = st.columns(2)
data_f = c3.file_uploader("Dataset (.zip of class folders, or a manifest)",
                          type=[s.lstrip(".") for s in ZIP_SUFFIXES + MANIFEST_SUFFIXES], key="up_data")
img_f = c4.file_uploader("Images for a manifest (.zip)", type=[s.lstrip(".") for s in ZIP_SUFFIXES], key="up_images")


def as_upload(f) -> Upload | None:
    return None if f is None else Upload(f.name, f.getvalue())


ups = {"model_old": as_upload(old_f), "model_new": as_upload(new_f), "dataset": as_upload(data_f),
       "images": as_upload(img_f)}
files = {"model_old": old_f, "model_new": new_f, "dataset": data_f, "images": img_f}
checked = st.session_state.setdefault("_upload_checks", {})  # Streamlit's file_id -> error message or None (no re-check per rerun)
ok = True
for role, up in ups.items():
    if up is None:
        continue
    memo = (role, files[role].file_id)
    if memo not in checked:
        try:
            check_upload(up, role.split("_")[0])
            checked[memo] = None
        except InputError as e:
            checked[memo] = e.message
        except Exception as e:  # a loader bug on odd input: still name the file, never a traceback box
            log.exception("upload check failed")
            checked[memo] = f"{up.name}: could not be read ({type(e).__name__}: {e})"
    if checked[memo] is not None:
        st.error(checked[memo], icon=":material/block:")
        ok = False

ready = ups["model_old"] is not None and ups["model_new"] is not None
if st.button("Compare the uploaded files", type="primary", disabled=not (ready and ok), key="btn_compare"):
    new_spec = None
    try:
        new_spec = spec_from_uploads(ups["model_old"], ups["model_new"], ups["dataset"], ups["images"])
        compute(new_spec)
    except InputError as e:
        st.error(user_message(e, new_spec), icon=":material/block:")
    except Exception as e:  # a core bug on odd input: report it, keep the previous comparison
        log.exception("upload comparison failed")
        st.error(f"{md(ups['model_old'].name)} → {md(ups['model_new'].name)}: could not be compared "
                 f"({type(e).__name__}: {e})", icon=":material/block:")
    else:
        select_comparison(new_spec.id)
        st.rerun()
if not ready:
    st.caption("Upload both an old and a new file to compare them.")
