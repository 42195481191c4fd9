"""The bundled MNIST digits load offline in the three places a notebook runs."""
import hashlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

RAW = REPO / "data" / "MNIST" / "raw"
# Fail any network connection, so a download attempt is an error, never a hang.
LOAD_OFFLINE = textwrap.dedent("""
    import socket
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    import coursedata
    from torchvision import datasets
    train = datasets.MNIST(root=coursedata.mnist_root(), train=True, download=True)
    test = datasets.MNIST(root=coursedata.mnist_root(), train=False, download=True)
    images, labels = coursedata.load_digits()
    assert len(train) == len(images) == 4000 and len(test) == 1000
    assert int(train[7][1]) == int(labels[7])
    print(coursedata.mnist_root())
""")


def run_loader(cwd, code=LOAD_OFFLINE, timeout=120):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_checksums_match_the_committed_files():
    for line in (REPO / "data" / "MNIST" / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((REPO / "data" / "MNIST" / name).read_bytes()).hexdigest() == digest, name


def test_all_ten_classes_present():
    import coursedata
    _, labels = coursedata.load_digits()
    assert sorted(set(labels.tolist())) == list(range(10))


def test_loads_in_the_repository_checkout():
    # A folder inside the repository tree with the module and no data/ of its own: the loader
    # finds the repository's data/ above it (artifacts/ is ignored by git).
    folder = REPO / "artifacts" / "loader-probe"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy2(REPO / "source" / "session10" / "coursedata.py", folder)
    try:
        result = run_loader(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(REPO / "data")


def test_loads_in_a_standalone_student_copy(tmp_path):
    copy = tmp_path / "session10"
    shutil.copytree(REPO / "release" / "session10", copy)
    result = run_loader(copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(copy / "data")


def test_loads_in_nbgraders_autograded_folder(graded_course):
    folder = graded_course.course.autograded / "reference" / "session10"
    result = run_loader(folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(folder / "data")


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_files_give_a_rebuild_message(tmp_path, damage):
    copy = tmp_path / "session10"
    shutil.copytree(REPO / "release" / "session10", copy)
    target = copy / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        target.unlink()
    result = run_loader(copy, timeout=60)
    assert result.returncode != 0
    assert "MnistDataError" in result.stderr
    assert "prepare_mnist.py" in result.stderr and "download the assignment again" in result.stderr
