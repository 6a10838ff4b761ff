"""Figures and widgets: training curves, digit grids, attention and attribution plots, explorers.

``plots`` holds Matplotlib figures that more than one notebook draws; ``explorers`` holds
ipywidgets tools that draw a meaningful default figure at once, so the static book shows it.
"""
