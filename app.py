"""graceful: the Streamlit app. Run with ``streamlit run app.py``.

A thin layer over :mod:`graceful_core`: this file sets up the pages, restores the
view from the URL, performs a pending page switch, loads the selected comparison
(cached by content) and draws the sidebar; each page in ``app_pages/`` only reads that
comparison and draws it.

The pages live in ``app_pages/``, not ``pages/`` (Streamlit would treat a ``pages/``
folder next to this file as the old multipage layout). Every page has its own URL path
(``/overview``, ``/flips``, ...); the root ``/`` is a hidden page that opens the
Overview, so a link to ``/overview?cmp=...`` and a link to ``/?cmp=...`` open the same view.
"""

import streamlit as st

from graceful_ui.layout import browser_behaviour
from graceful_ui.state import init_state, take_page_request, write_query_params
from graceful_ui.widgets import active_comparison, set_page_comparison, sidebar

st.set_page_config(
    page_title="graceful: model update regressions", page_icon=":material/compare_arrows:", layout="wide"
)
init_state()
browser_behaviour()

PAGES = {
    "overview": st.Page(
        "app_pages/overview_page.py", title="Overview", icon=":material/dashboard:", url_path="overview"
    ),
    "inputs": st.Page(
        "app_pages/inputs_page.py", title="Choose inputs", icon=":material/upload_file:", url_path="inputs"
    ),
    "flips": st.Page("app_pages/flips_page.py", title="Flips", icon=":material/swap_horiz:", url_path="flips"),
    "slices": st.Page("app_pages/slices_page.py", title="Slices", icon=":material/category:", url_path="slices"),
    "sample": st.Page("app_pages/sample_page.py", title="Sample", icon=":material/image_search:", url_path="sample"),
    "embeddings": st.Page(
        "app_pages/embeddings_page.py", title="Embeddings", icon=":material/scatter_plot:", url_path="embeddings"
    ),
    "retrieval": st.Page(
        "app_pages/retrieval_page.py", title="Retrieval", icon=":material/manage_search:", url_path="retrieval"
    ),
    "versions": st.Page(
        "app_pages/versions_page.py", title="Versions", icon=":material/account_tree:", url_path="versions"
    ),
    "mitigate": st.Page("app_pages/mitigate_page.py", title="Mitigate", icon=":material/healing:", url_path="mitigate"),
}
HOME = st.Page(lambda: None, title="graceful", url_path="home", default=True, visibility="hidden")
page = st.navigation([HOME, *PAGES.values()])
wanted = take_page_request(next((key for key, p in PAGES.items() if p is page), None))
if page is HOME and wanted not in PAGES:  # the root URL opens the Overview
    wanted = "overview"
if wanted in PAGES and PAGES[wanted] is not page:
    st.switch_page(PAGES[wanted])

spec, comp = active_comparison()
set_page_comparison(spec, comp)
st.session_state["_pages"] = PAGES
sidebar(spec, comp)
write_query_params()  # state changed by callbacks is already in place here
page.run()
write_query_params()
