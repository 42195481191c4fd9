"""The course's vocabulary, standard library only: every other layer may import it.

    cells   nbgrader's cell kinds, grade ids, solution regions and the release's stub
    spec    the submission spec format (submissions/*.toml): the one reader, and the one code that
            applies a spec to a notebook (autograde's submissions and the plain runner share it)
    events  what a grading run reports about a submission, and how the report treats it
    limits  grading limits: their defaults and the one reader of nbgrader_config.py
"""
