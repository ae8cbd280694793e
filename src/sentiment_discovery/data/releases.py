"""Published model weights to download: OpenAI's released mLSTM, verified by git blob ids.

OpenAI's release is the 15 files ``model/0.npy`` ... ``model/14.npy`` of the repository
``openai/generating-reviews-discovering-sentiment``, fetched from its raw file URLs (branch
``master``) and verified each by its git blob id: the SHA-1 of ``b"blob <size>\\0"`` followed by
the content, the id the repository's tree records. An interrupted download is resumed with an
HTTP Range request; ``mirror`` (a directory or an http(s) URL) serves the same files from a
local copy or another server. Importing and installing the files is ``recipes/download.py``'s.
"""

import dataclasses
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..foundation import log, storage
from ..foundation.errors import UserError
from .download import _CHUNK, TIMEOUT_SECONDS, _fetch, _fetch_resuming, _is_url, _join


def git_blob_id(path: str | os.PathLike) -> str:
    """The id git gives a file's content: SHA-1 of ``b"blob <size>\\0"`` followed by the bytes."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode("ascii"))
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ModelRelease:
    """Published weights that ``download NAME`` fetches, verifies and imports into the model cache."""
    name: str
    base_url: str
    files: tuple[tuple[str, str], ...]  # (file name, git blob id) in the release's order
    sentiment_unit: int | None
    description: str


# The blob ids of openai/generating-reviews-discovering-sentiment's model/ folder, from the
# repository's tree at its last commit (0032e4b, "update README with repo status").
OPENAI_MLSTM = ModelRelease(
    name="openai-mlstm",
    base_url="https://raw.githubusercontent.com/openai/generating-reviews-discovering-sentiment/master/model",
    files=(
        ("0.npy", "64046c2bfcc46b04001ecc72c523fa06ea49da26"),
        ("1.npy", "48a9ce0d01b7f8394345f3587559ce8ce7e47841"),
        ("2.npy", "9a78f2c8f5447d0eb2c93d6f8f2632483441a072"),
        ("3.npy", "8dc8daffdd0317fe2062ce7730608f2d1ace7737"),
        ("4.npy", "90ff06565ee66227c075ea724d010a0dd87b76d9"),
        ("5.npy", "181109eb9fbea7529d9ccbbade234365f40914ee"),
        ("6.npy", "875fadb36c969edabffd35df7702c80de2fb895e"),
        ("7.npy", "5f946abd4eb767a0c04941eb90f8bee718ccceef"),
        ("8.npy", "3fd585ae5e53cae155ea8b760950db24ab13424b"),
        ("9.npy", "45d5ce521c7b10f3e6ccc702f902846e3e1d4216"),
        ("10.npy", "068c953b192b871251d2b67f4c3c4cf76700dbf1"),
        ("11.npy", "4266d2a2ffde97cc74cb54707f5b6fc74b924cea"),
        ("12.npy", "6116d17dec7f722b55248e632c25be47cf13b6a4"),
        ("13.npy", "21a442e141da569d96d1739aa9fe3277544255ef"),
        ("14.npy", "0f452d14e0ac21f47c4c68de3b4427dee9b5ce6a"),
    ),
    sentiment_unit=2388,
    description="OpenAI's released 4,096-unit byte mLSTM (Radford et al. 2017), sentiment unit 2388, 345 MB",
)

MODEL_RELEASES = {release.name: release for release in (OPENAI_MLSTM,)}


def _exists(location: str) -> bool:
    if not _is_url(location):
        return Path(location).is_file()

    try:
        with urllib.request.urlopen(urllib.request.Request(location, method="HEAD"), timeout=TIMEOUT_SECONDS):
            return True
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            return False
        raise UserError(f"could not reach {location}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"could not reach {location}: {reason}; without internet access use --mirror DIR") from None


def release_location(release: ModelRelease, mirror: str | None) -> str:
    """Where the release's files are read: its URL, or the folder of ``mirror`` that holds them
    (``<mirror>/<name>/``, ``<mirror>/model/`` as in the repository, or ``<mirror>/`` itself)."""
    if mirror is None:
        return release.base_url
    first = release.files[0][0]
    for base in (_join(mirror, release.name), _join(mirror, "model"), mirror):
        if _exists(_join(base, first)):
            return base
    raise UserError(
        f"mirror {mirror} holds no {first} of {release.name} (looked in {release.name}/, model/ and itself)"
    )


def download_release(
    release: ModelRelease,
    directory: str | os.PathLike,
    *,
    mirror: str | None = None,
    progress: bool = False,
) -> tuple[Path, str]:
    """Make ``directory`` hold the release's files, each verified by its git blob id; return it and
    where the files came from.

    Files already there and verified are kept; a partial one is resumed. A file whose id does
    not match is an error that removes ``directory`` whole, so nothing unverified stays behind.
    """
    directory = Path(directory)
    location = release_location(release, mirror)
    directory.mkdir(parents=True, exist_ok=True)
    for name, blob_id in release.files:
        target = directory / name
        if target.is_file() and git_blob_id(target) == blob_id:
            continue
        partial = directory / (name + ".partial")
        source = _join(location, name)
        if _is_url(source):
            fetched = _fetch_resuming(source, partial, progress)
        else:
            fetched = _fetch(source, partial, progress)
        if not fetched:
            raise UserError(f"{source} does not exist" + ("" if mirror is None else " (check --mirror)"))
        actual = git_blob_id(partial)
        if actual != blob_id:
            storage.remove(directory)
            raise UserError(
                f"{source} has git blob id {actual}, expected {blob_id}: the file is damaged or not the published "
                f"one; nothing was installed"
            )
        os.replace(partial, target)
    log.info(f"{release.name}: {len(release.files)} files from {location} verified by their git blob ids")
    return directory, location
