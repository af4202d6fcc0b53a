"""The web app (``emolens app``): :mod:`emolens.app.session` computes, :mod:`emolens.app.ui`
lays out the Gradio page."""
