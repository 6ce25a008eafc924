"""The Multi30k download path, for real: an HTTP server on 127.0.0.1 serves a mirror."""
import functools, http.server, shutil, threading

import pytest

from seq2seq_nb.data import MULTI30K_SHA256, DataError, _sha256, fetch_multi30k


@pytest.fixture
def http_mirror(mirror_dir, tmp_path):
    "Serve a copy of the mirror over HTTP; yields (base URL, served folder, list of requested paths)."
    served = tmp_path/"served"; shutil.copytree(mirror_dir, served)
    requests = []
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): requests.append(self.path)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", served, requests
    srv.shutdown(); srv.server_close()


def test_download_checks_and_caches(http_mirror, tmp_path):
    url, _, requests = http_mirror
    cache = tmp_path/"cache"
    p = fetch_multi30k("valid", "fr", data_dir=cache, mirror=url)
    assert p == cache/"multi30k"/"val.fr.gz" and _sha256(p.read_bytes()) == MULTI30K_SHA256["val.fr.gz"]
    assert len(requests) == 1
    assert fetch_multi30k("valid", "fr", data_dir=cache, mirror=url) == p   # second call: from the cache
    assert len(requests) == 1
    assert [f.name for f in (cache/"multi30k").iterdir()] == ["val.fr.gz"]  # no temporary files left


def test_env_var_mirror_is_used(http_mirror, tmp_path, monkeypatch):
    url, _, requests = http_mirror
    monkeypatch.setenv("SEQ2SEQ_DATA_MIRROR", url + "/")
    fetch_multi30k("test", "en", data_dir=tmp_path)
    assert requests == ["/test_2016_flickr.en.gz"]


def test_corrupted_file_is_refused_and_not_cached(http_mirror, tmp_path):
    url, served, _ = http_mirror
    f = served/"val.en.gz"; data = bytearray(f.read_bytes()); data[100] ^= 0xFF; f.write_bytes(bytes(data))
    cache = tmp_path/"cache"
    with pytest.raises(DataError, match="does not match the published"):
        fetch_multi30k("valid", "en", data_dir=cache, mirror=url)
    assert not cache.exists() or not any(cache.rglob("*"))  # nothing cached, no temporary file


def test_corrupt_cache_is_downloaded_again(http_mirror, tmp_path):
    url, _, requests = http_mirror
    bad = tmp_path/"multi30k"/"val.en.gz"; bad.parent.mkdir(); bad.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="does not match its SHA-256"):
        p = fetch_multi30k("valid", "en", data_dir=tmp_path, mirror=url)
    assert _sha256(p.read_bytes()) == MULTI30K_SHA256["val.en.gz"] and len(requests) == 1


def test_missing_file_and_offline_errors_say_what_to_do(http_mirror, tmp_path):
    url, served, _ = http_mirror
    (served/"train.de.gz").unlink()
    cache = tmp_path/"cache"
    with pytest.raises(DataError, match="HTTP 404 .*SEQ2SEQ_DATA_MIRROR"):
        fetch_multi30k("train", "de", data_dir=cache, mirror=url)
    # a port nobody listens on: connection refused, as when offline
    with pytest.raises(DataError, match="could not fetch .*Connection refused.*SEQ2SEQ_DATA_MIRROR"):
        fetch_multi30k("train", "de", data_dir=cache, mirror="http://127.0.0.1:9")
    assert not cache.exists() or not any(cache.rglob("*"))


def test_directory_mirror(mirror_dir, tmp_path):
    p = fetch_multi30k("test", "fr", data_dir=tmp_path, mirror=str(mirror_dir))
    assert p.read_bytes() == (mirror_dir/"test_2016_flickr.fr.gz").read_bytes()


def test_bad_split_or_language():
    with pytest.raises(ValueError, match="valid: train, valid, test"): fetch_multi30k("dev", "en")
    with pytest.raises(ValueError, match="valid: en, fr, de"): fetch_multi30k("train", "es")
