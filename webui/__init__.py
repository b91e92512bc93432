"""The FastAPI app factory and the Gradio pages."""
