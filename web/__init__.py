"""The web page: both models side by side, with their explanations (Streamlit)."""
