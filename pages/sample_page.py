import streamlit as st
st.title("Sample")
