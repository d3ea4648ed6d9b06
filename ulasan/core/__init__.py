"""The shared core: what several deployables use (settings, text, the ONNX runtime, the registry's
read side, topic admin, scrape targets). It imports ``schemas`` and libraries, never a deployable.
"""
