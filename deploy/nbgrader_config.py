"""System-wide nbgrader configuration for the course (deploy/hub.py installs it as
/etc/jupyter/nbgrader_config.py). Students, graders and the instructor all read it; the course
folder's own nbgrader_config.py adds the grading settings for the staff.
"""
import os
import shutil

from nbgrader.exchange.default import ExchangeFetchFeedback, ExchangeReleaseFeedback

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "nn-engineers-session10"
c.Exchange.root = "/srv/nbgrader/exchange"

# Feedback pages load MathJax from mathjax/ beside them (their Content-Security-Policy allows
# scripts from their own folder only), but nbgrader's exchange carries the .html alone. These two
# also carry that folder: one shared copy in the exchange's feedback area (the same for every
# student), copied beside each fetched feedback.
MATHJAX = "mathjax"


def _copy_public(src, dest):
    """Copy a folder readable by everyone (the exchange's feedback area is 0711), replacing dest."""
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=shutil.copyfile)
    for folder, _dirs, files in os.walk(tmp):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)


class ReleaseFeedbackWithMathJax(ExchangeReleaseFeedback):
    def copy_files(self):
        super().copy_files()
        import glob
        found = sorted(glob.glob(os.path.join(self.src_path, MATHJAX, "MathJax.js")))
        if found:
            _copy_public(os.path.dirname(found[0]), os.path.join(self.dest_path, MATHJAX))


class FetchFeedbackWithMathJax(ExchangeFetchFeedback):
    def copy_files(self):
        super().copy_files()
        src = os.path.join(self.src_path, MATHJAX)
        if os.path.isfile(os.path.join(src, "MathJax.js")):
            for timestamp in {ts for _, ts, _ in self.feedback_files}:
                _copy_public(src, os.path.join(self.dest_path, timestamp, MATHJAX))


# Opened through the student's server (/files/), a page is sandboxed and reaches only what needs no
# login: MathJax and its settings from the server's static files (coursetools.grader.mathjax).
c.LocalMathJax.server_url = "/user/{student}/"

c.ExchangeFactory.release_feedback = ReleaseFeedbackWithMathJax
c.ExchangeFactory.fetch_feedback = FetchFeedbackWithMathJax
