"""graceful: the Streamlit app. Run with ``streamlit run app.py``.

A thin layer over :mod:`graceful_core`: this file sets up the pages, restores the
view from the URL, loads the selected comparison (cached by content hash) and draws
the sidebar; each page in ``app_pages/`` only reads that comparison and draws it.
"""

import streamlit as st

from graceful_ui.state import init_state, write_query_params
from graceful_ui.widgets import active_comparison, set_page_comparison, sidebar

st.set_page_config(page_title="graceful: model update regressions", page_icon=":material/compare_arrows:", layout="wide")
init_state()

PAGES = {
    "overview": st.Page("app_pages/overview_page.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    "inputs": st.Page("app_pages/inputs_page.py", title="Choose inputs", icon=":material/upload_file:", url_path="inputs"),
    "flips": st.Page("app_pages/flips_page.py", title="Flips", icon=":material/swap_horiz:", url_path="flips"),
    "sample": st.Page("app_pages/sample_page.py", title="Sample", icon=":material/image_search:", url_path="sample"),
    "embeddings": st.Page("app_pages/embeddings_page.py", title="Embeddings", icon=":material/scatter_plot:",
                          url_path="embeddings"),
    "retrieval": st.Page("app_pages/retrieval_page.py", title="Retrieval", icon=":material/manage_search:",
                         url_path="retrieval"),
    "versions": st.Page("app_pages/versions_page.py", title="Versions", icon=":material/account_tree:",
                        url_path="versions"),
    "mitigate": st.Page("app_pages/mitigate_page.py", title="Mitigate", icon=":material/healing:", url_path="mitigate"),
}
page = st.navigation(list(PAGES.values()))

wanted = st.session_state.pop("_initial_page", None)
if wanted in PAGES and PAGES[wanted].url_path != page.url_path:
    st.switch_page(PAGES[wanted])

spec, comp = active_comparison()
set_page_comparison(spec, comp)
st.session_state["_pages"] = PAGES
sidebar(spec, comp)
write_query_params()  # state changed by callbacks is already in place here
page.run()
write_query_params()
