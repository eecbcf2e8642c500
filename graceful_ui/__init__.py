"""Streamlit-side helpers of the graceful app: inputs, caching, state/deep links, image grid.

Everything that computes lives in :mod:`graceful_core`; this package only wires it to
Streamlit (session state, ``st.cache_resource``, query parameters, rendering).
"""
