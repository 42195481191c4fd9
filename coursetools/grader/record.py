"""The grader's end of the kernel's record of what the student's code ran (``recorder.Record`` writes it).

The grader makes a pipe before the kernel starts and hands the kernel its write end (named by the
environment variable ``recorder.RECORD_FD``). The kernel writes each note at once, one JSON line, so
code that runs after a note cannot take it back; the grader reads what is there after each graded
call and each cell. A kernel manager that hands the pipe over is ``RecordingKernelManager``
(``sandbox.SandboxedKernelManager`` builds on it).
"""
import contextlib
import fcntl
import json
import os

from jupyter_client.manager import AsyncKernelManager

from coursetools.grader import recorder

PIPE_BYTES = 1 << 20   # room for every note a kernel may write (recorder.Record.MAX_NOTES lines), so it never waits


class RecordPipe:
    """A pipe the kernel writes notes into; ``lines()`` reads what it holds now, without waiting."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)   # a full pipe makes the kernel's note fail, never wait
        self._rest = b""

    def lines(self):
        """The notes written since the last call: dicts; a line that is not a note is left out."""
        data = self._rest
        while True:
            try:
                chunk = os.read(self.read_fd, 1 << 16)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            data += chunk
        *whole, self._rest = data.split(b"\n")
        notes = []
        for line in whole:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                note = json.loads(line)
                if isinstance(note, dict) and isinstance(note.get("kind"), str) and isinstance(note.get("what"), str):
                    notes.append(note)
        return notes

    def handed_over(self):
        """The kernel has its copy of the write end: the grader's is closed."""
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    def close(self):
        self.handed_over()
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None


class RecordingKernelManager(AsyncKernelManager):
    """A kernel manager that hands the kernel the write end of a ``RecordPipe`` (``record``)."""

    record = None

    def open_record(self):
        """The pipe for the next kernel (made once per start)."""
        if self.record is not None:
            self.record.close()
        self.record = RecordPipe()
        return self.record

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        record = self.record if self.record is not None and self.record.write_fd is not None else self.open_record()
        kw["pass_fds"] = tuple(dict.fromkeys((*kw.get("pass_fds", ()), record.write_fd)))
        kw["env"] = {**(kw.get("env") or os.environ), recorder.RECORD_FD: str(record.write_fd)}
        try:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            record.handed_over()

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if self.record is not None and not restart:
            self.record.close()
            self.record = None

    cleanup_resources = _async_cleanup_resources
