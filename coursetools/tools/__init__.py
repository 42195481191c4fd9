"""Instructor tools on top of the pipeline: trial, corpus, gpucheck, nbtext (each ``python -m``)."""
