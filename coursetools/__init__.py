"""Instructor tooling for the Session 10 course unit: ``python -m coursetools --help``."""
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
ASSIGNMENT = "session10"
