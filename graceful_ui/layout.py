"""What the browser does for the app: the sidebar folds on narrow windows; Back goes one view back.

Streamlit's ``initial_sidebar_state="auto"`` folds the sidebar only below its mobile
breakpoint (768 px); between that and about 1,100 px the open sidebar leaves the main
column so narrow that metric cards cut their values ("88…") and the Flips matrix is
cropped. The server cannot know the window's width, so a few lines of JavaScript in the
page fold the sidebar once, on the first load of a browser tab narrower than
:data:`COLLAPSE_BELOW_PX`; a user who opens it again keeps it open (the tab remembers,
in ``sessionStorage``, that it was folded). A metric card's label wraps instead of being cut.

Back: Streamlit adds a browser-history entry for every change of the URL, and one user
action can change it several times (a page switch, then the filters the new page
writes, each in its own step), so Back would walk through views the user never saw. The
script makes the first URL change after a click or a key press a new entry and every
further change before the next one replace it: one action, one entry. Changes with no
user action before them (the first load, the rerun after Back itself) replace too.
"""

from __future__ import annotations

import streamlit as st

#: Windows narrower than this (CSS px) start with the sidebar folded.
COLLAPSE_BELOW_PX = 1100

_SCRIPT = """
<style>
/* a metric card's label wraps onto a second line instead of ending in "…" on narrow columns */
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
}
</style>
<script>
(() => {
  if (!window.__gracefulHistory) {
    window.__gracefulHistory = true;
    const push = window.history.pushState.bind(window.history);
    let armed = false;
    const arm = () => { armed = true; };
    window.addEventListener("pointerdown", arm, true);
    window.addEventListener("keydown", arm, true);
    window.addEventListener("popstate", () => { armed = false; }, true);
    window.history.pushState = (state, title, url) => {
      if (armed) {
        armed = false;
        return push(state, title, url);
      }
      return window.history.replaceState(state, title, url);
    };
  }
  const key = "graceful.sidebar.folded";
  if (window.innerWidth >= %(px)d || window.sessionStorage.getItem(key)) return;
  let tries = 0;
  const fold = () => {
    const bar = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button')
      || document.querySelector('[data-testid="stSidebarCollapseButton"]');
    if (bar && (bar.getAttribute("data-collapsed") === "true" || bar.getAttribute("aria-expanded") === "false")) {
      window.sessionStorage.setItem(key, "1");
      return;
    }
    if (bar && button) {
      button.click();
      window.sessionStorage.setItem(key, "1");
      return;
    }
    if (++tries < 100) window.setTimeout(fold, 100);
  };
  fold();
})();
</script>
"""


def browser_behaviour() -> None:
    """Emit the script: the sidebar folds on windows narrower than :data:`COLLAPSE_BELOW_PX`; one history entry per action.

    Drawn inside the sidebar, so the main column gets no empty element.
    """
    with st.sidebar:
        st.html(_SCRIPT % {"px": COLLAPSE_BELOW_PX}, unsafe_allow_javascript=True)
