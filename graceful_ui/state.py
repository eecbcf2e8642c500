"""Session state that survives page switches, mirrored in the URL for deep links.

The canonical values live in ``st.session_state`` under plain keys (widget state is
dropped by Streamlit when a widget is not drawn, so widgets use separate keys and
copy back with callbacks). On a session's first run the URL's query parameters are
read in (a pasted link opens the same view); on every run the state is written back
to ``st.query_params``, so the URL always names the current view.

URL parameters: ``cmp`` (comparison id), ``cls`` (class filter, repeatable),
``flip`` (flip-type filter, repeatable: ``neg``, ``pos``, ``ok``, ``bad``), ``old`` and
``new`` (a transition-matrix cell), ``sample`` (sample id), ``p`` (grid page), ``sort`` (grid order,
when not the default), ``slice`` (a regression slice that filters the Flips grid: its key,
``site=harbour`` or ``cluster:3``), and the Embeddings view's ``layout`` (``joint``, ``side``), ``colour``
(``model``, ``class``, ``flip``, ``cluster``) and ``lines`` (``1``) when chosen. The
page itself is the URL path (``/flips``); ``?page=flips`` is accepted too.

Page switches that cannot happen where they are decided (in a widget callback, or
before ``st.navigation`` knows the pages) are deferred with :func:`request_page`;
``app.py`` performs the one pending request (:func:`take_page_request`) before it draws
a page.
"""

from __future__ import annotations

import streamlit as st

from graceful_core.vocabulary import EMBEDDING_COLOURINGS, FLIP_TYPES
from graceful_ui.bundled_specs import bundled_specs
from graceful_ui.spec import Spec
from graceful_ui.spec_ids import resolve_spec

FLIP_CODES = dict(zip(FLIP_TYPES, ("neg", "pos", "ok", "bad")))
CODE_FLIPS = {v: k for k, v in FLIP_CODES.items()}
DEFAULT_FLIPS = ["negative flip"]

#: Embeddings view choices: URL code -> widget label.
EMB_LAYOUTS = {"joint": "joint map", "side": "side by side"}
#: Embeddings colourings: URL code -> widget label (read off
#: :data:`~graceful_core.vocabulary.EMBEDDING_COLOURINGS`).
EMB_COLOURS = {c.code: c.label for c in EMBEDDING_COLOURINGS}


def _defaults() -> dict:
    specs = bundled_specs()
    return {
        "cmp": specs[0].id if specs else None,
        "classes": [],
        "flips": list(DEFAULT_FLIPS),
        "cell": None,
        "sample": None,
        "grid_page": 1,
        "sort": None,
        "slice": None,
        "emb_layout": None,
        "emb_colour": None,
        "emb_lines": False,
    }


def _url_params() -> dict[str, str | list[str]]:
    """The URL's query parameters in the shape of :func:`link_params`."""
    return {k: (st.query_params.get_all(k) if k in ("cls", "flip") else st.query_params[k]) for k in st.query_params}


def init_state() -> None:
    """Fill the session state: from the URL on the session's first run, else keep it.

    Also from the URL when the browser changed it (Back, Forward): the URL then differs
    from the one the previous run wrote, and the view it names is read in again, so Back
    restores the filters of the view it goes back to, not only its page.
    """
    ss = st.session_state
    if ss.get("_initialised"):
        written = ss.get(_URL_WRITTEN)
        if written is None or _url_params() == written or "cmp" not in st.query_params:
            return
        for k, v in _defaults().items():
            if k != "cmp":
                ss[k] = v
        ss["emb_lines"] = False
    for k, v in _defaults().items():
        ss.setdefault(k, v)
    _read_view_from_url(ss)
    ss["_initialised"] = True


def _read_view_from_url(ss) -> None:
    """Set the view's session keys from the URL's query parameters (each checked where it is used)."""
    qp = st.query_params
    if "cmp" in qp:
        spec = resolve_spec(qp["cmp"])
        if spec is not None:
            ss["cmp"] = spec.id
        else:
            ss["_bad_link"] = qp["cmp"]
    if "cls" in qp:
        ss["classes"] = [c for c in qp.get_all("cls") if c]
    if "flip" in qp:
        ss["flips"] = [CODE_FLIPS[c] for c in qp.get_all("flip") if c in CODE_FLIPS]
    if "old" in qp and "new" in qp:
        ss["cell"] = (qp["old"], qp["new"])
    if "sample" in qp:
        ss["sample"] = qp["sample"]
    if "p" in qp and qp["p"].isascii() and qp["p"].isdigit():  # "²".isdigit() is True too
        ss["grid_page"] = int(qp["p"])
    if "sort" in qp:
        ss["sort"] = qp["sort"]  # checked against the page's sort orders where it is used
    if qp.get("slice"):
        ss["slice"] = qp["slice"]  # resolved against the comparison's slices where it is used
    if qp.get("layout") in EMB_LAYOUTS:
        ss["emb_layout"] = qp["layout"]
    if qp.get("colour") in EMB_COLOURS:
        ss["emb_colour"] = qp["colour"]
    ss["emb_lines"] = qp.get("lines") == "1" or bool(ss.get("emb_lines"))
    if qp.get("page"):
        request_page(qp["page"])


#: Session key of the one pending page switch (see :func:`request_page`).
_PAGE_REQUEST = "_page_request"
#: Session key of the page the last run drew (the page a callback's click was made on).
_PAGE_DRAWN = "_page_drawn"


def request_page(name: str) -> None:
    """Switch to the page ``name`` (a key of app.py's pages) before the next page is drawn.

    For callbacks and other places where ``st.switch_page`` cannot run; a later request
    replaces an earlier one. The request belongs to the page on screen when it is made: if the
    next run draws another page (the user clicked one while the callback's run was still going),
    it is dropped, so the user's own click is never overridden.
    """
    st.session_state[_PAGE_REQUEST] = (name, st.session_state.get(_PAGE_DRAWN))


def take_page_request(current: str | None = None) -> str | None:
    """The pending page switch, if any (and forget it); ``current`` is the key of the page this run draws.

    None also when the request was made on another page than ``current`` (see :func:`request_page`).
    """
    ss = st.session_state
    name, origin = ss.pop(_PAGE_REQUEST, (None, None))
    ss[_PAGE_DRAWN] = current
    if origin is not None and current is not None and origin != current:
        return None
    return name


def link_params() -> dict[str, str | list[str]]:
    """The query parameters that describe the current view."""
    ss = st.session_state
    out: dict[str, str | list[str]] = {}
    if ss.get("cmp"):
        out["cmp"] = ss["cmp"]
    if ss.get("classes"):
        out["cls"] = list(ss["classes"])
    if ss.get("flips") != DEFAULT_FLIPS:
        out["flip"] = [FLIP_CODES[f] for f in ss.get("flips") or []] or [""]
    if ss.get("cell"):
        out["old"], out["new"] = ss["cell"]
    if ss.get("sample"):
        out["sample"] = ss["sample"]
    if ss.get("grid_page", 1) != 1:
        out["p"] = str(ss["grid_page"])
    if ss.get("sort"):
        out["sort"] = ss["sort"]
    if ss.get("slice"):
        out["slice"] = ss["slice"]
    if ss.get("emb_layout"):
        out["layout"] = ss["emb_layout"]
    if ss.get("emb_colour"):
        out["colour"] = ss["emb_colour"]
    if ss.get("emb_lines"):
        out["lines"] = "1"
    return out


#: Session key of the query parameters the last run wrote (:func:`init_state` compares the URL with them).
_URL_WRITTEN = "_url_written"


def write_query_params() -> None:
    """Mirror the state in the URL (only when it changed, to avoid needless reruns)."""
    want = link_params()
    if _url_params() != want:
        st.query_params.from_dict(want)
    st.session_state[_URL_WRITTEN] = want


def current_spec() -> Spec | None:
    """The spec of the selected comparison, or None."""
    return resolve_spec(st.session_state.get("cmp"))


def select_comparison(spec_id: str) -> None:
    """Switch to another comparison; filters that name classes are reset."""
    ss = st.session_state
    if ss.get("cmp") != spec_id:
        ss["cmp"] = spec_id
        ss["classes"], ss["cell"], ss["sample"], ss["grid_page"], ss["slice"] = [], None, None, 1, None
