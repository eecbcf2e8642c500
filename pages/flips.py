import streamlit as st
st.title("Flips")
