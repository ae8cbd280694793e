"""Fetching the standard labelled sets (SST-2, IMDB, MR, CR, SUBJ, MPQA) into ``<to>/<dataset>/``, verified by sha256.

The layout is the one of the project's shared data folder::
    <to>/sst2/train.csv, dev.csv, test.csv        header label,sentence (label 1 = positive)
    <to>/imdb/train.csv.gz, test.csv.gz           header id,rating,label,text (gzipped CSV)
    <to>/mr/mr.csv, cr/cr.csv, subj/subj.csv, mpqa/mpqa.csv
                                                  header label,sentence (1 = positive / subjective)

SST-2 is the binary, untokenised Stanford Sentiment Treebank as distributed with the
original "Generating Reviews and Discovering Sentiment" release (its ``data/`` folder
names the files ``train_binary_sent.csv``, ``dev_binary_sent.csv``,
``test_binary_sent.csv``); each file is checked against its published sha256.

IMDB is Stanford's ``aclImdb_v1.tar.gz`` (Maas et al., 2011), checked against the
archive's sha256 and converted: one row per review of ``train``/``test`` ``neg`` then
``pos``, in increasing id order, ``rating`` from the file name ``<id>_<rating>.txt``,
label 0 for ``neg`` and 1 for ``pos``, the text unchanged. Gzip output differs from tool
to tool, so the converted files are verified by the sha256 of their decompressed CSV.

MR and SUBJ are Pang and Lee's ``rt-polaritydata.tar.gz`` (v1.0) and ``rotten_imdb.tar.gz``
from the Cornell movie-review data page; CR and MPQA are the ``custrev`` and ``mpqa`` files of
the NB-SVM archive ``datasmall_NB_ACL12.zip`` as SentEval distributes it. Each becomes one CSV
(these sets have no standard split; they are cross-validated): the positive (subjective) file's
lines, then the negative (objective) file's, each line verbatim without its line end, decoded
as Windows-1252, blank lines dropped, the sentence always quoted. The CSVs are verified by
sha256, so a conversion that differs by one byte is an error.

Published models are fetched with the same helpers by ``data/releases.py``.

Files already present and verified make a run a no-op. ``mirror`` (a directory or an
http(s) URL) is searched first for finished files in the same layout
(``<mirror>/<dataset>/<file>`` or ``<mirror>/<file>``), then for the original source
files under their original names.
"""

import csv
import dataclasses
import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from ..foundation import log, storage
from ..foundation.errors import UserError
from ..foundation.storage import file_sha256

TIMEOUT_SECONDS = 60
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class OutputFile:
    """A file of ``<to>/<dataset>/``; ``sha256`` is of its bytes, or of its decompressed bytes if gzipped."""
    name: str
    sha256: str
    source: str | None = None  # the original file's name, when the file is fetched as it is


@dataclasses.dataclass(frozen=True)
class Archive:
    """An original archive that ``convert`` turns into the dataset's files."""
    name: str
    # None where no checksum of the archive is published: the converted files' sha256 still checks every byte.
    sha256: str | None
    convert: Callable[[Path, Path], None]  # (archive path, dataset directory) -> writes the outputs


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    base_url: str
    files: tuple[OutputFile, ...]
    archive: Archive | None = None


# --------------------------------------------------------------------------- IMDB conversion

_IMDB_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")
IMDB_HEADER = ("id", "rating", "label", "text")


def _write_gzipped_csv(path: Path, header, rows) -> None:
    # mtime=0 and no file name in the header: the same rows always give the same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
        with io.TextIOWrapper(compressed, encoding="utf-8", newline="") as text:
            writer = csv.writer(text)
            writer.writerow(header)
            writer.writerows(rows)


def convert_aclimdb(archive: Path, directory: Path) -> None:
    """Write ``train.csv.gz`` and ``test.csv.gz`` (id,rating,label,text) from ``aclImdb_v1.tar.gz``."""
    reviews: dict[str, dict[tuple[int, int], tuple[int, str]]] = {"train": {}, "test": {}}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                match = _IMDB_MEMBER.match(member.name)
                if not match or not member.isfile():
                    continue
                split, polarity, review_id, rating = match.groups()
                data = tar.extractfile(member).read()
                label = 1 if polarity == "pos" else 0
                reviews[split][(label, int(review_id))] = (int(rating), data.decode("utf-8", errors="replace"))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise UserError(f"{archive}: not a readable aclImdb archive ({error})") from None
    for split, found in reviews.items():
        if not found:
            raise UserError(f"{archive} holds no aclImdb/{split}/neg|pos/<id>_<rating>.txt reviews")
        rows = ((review_id, rating, label, text) for (label, review_id), (rating, text) in sorted(found.items()))
        _write_gzipped_csv(directory / f"{split}.csv.gz.partial", IMDB_HEADER, rows)


# --------------------------------------------------------------------------- MR, CR, SUBJ, MPQA conversion

# The original files are Windows-1252 (MR uses 0x85, 0x91, 0x96, 0x97 for ... ' - -).
SENTENCE_ENCODING = "cp1252"


def _archive_members(archive: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of the members whose file names are ``names``, at any depth of a .tar.gz or .zip archive."""
    found: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for info in bundle.infolist():
                    name = info.filename.rsplit("/", 1)[-1]
                    if name in names and not info.is_dir():
                        found[name] = bundle.read(info)
        else:
            with tarfile.open(archive, mode="r|gz") as tar:
                for member in tar:
                    name = member.name.rsplit("/", 1)[-1]
                    if name in names and member.isfile():
                        found[name] = tar.extractfile(member).read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as error:
        raise UserError(f"{archive}: not a readable archive ({error})") from None
    missing = [name for name in names if name not in found]
    if missing:
        raise UserError(f"{archive} holds no {', '.join(missing)}: not the published archive")
    return found


def sentence_lines(data: bytes) -> list[str]:
    """A source file's lines, decoded, without line ends; blank lines dropped."""
    lines = []
    for line in data.split(b"\n"):
        text = line.removesuffix(b"\r").decode(SENTENCE_ENCODING)
        if text.strip():
            lines.append(text)
    return lines


def write_sentence_csv(path: Path, positive: list[str], negative: list[str]) -> None:
    """``label,sentence`` with every sentence quoted: the positive rows (label 1) first, then the negative."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("label,sentence\n")
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writerows([1, text] for text in positive)
        writer.writerows([0, text] for text in negative)


def sentence_pair_converter(output: str, positive: str, negative: str) -> Callable[[Path, Path], None]:
    """A ``convert`` that writes ``output`` from the archive's ``positive`` and ``negative`` line files."""
    def convert(archive: Path, directory: Path) -> None:
        members = _archive_members(archive, (positive, negative))
        write_sentence_csv(
            directory / f"{output}.partial", sentence_lines(members[positive]), sentence_lines(members[negative])
        )

    return convert


# --------------------------------------------------------------------------- the datasets

SST2 = Dataset(
    name="sst2",
    base_url="https://raw.githubusercontent.com/openai/generating-reviews-discovering-sentiment/master/data",
    files=(
        OutputFile("train.csv", "6003623bcb35aad3a446a265b8931b7ccab61fcc10f2e9c1fec916ff67c7be35", "train_binary_sent.csv"),
        OutputFile("dev.csv", "f34c4987fea208fefc2d62a1b42c83a766cbfc7ce58c2a878ef953cf91f01729", "dev_binary_sent.csv"),
        OutputFile("test.csv", "519cea7ed4d22fe7ec4eccbb3d5ba6d88902a3b15ce129f476aa8364463a9fc7", "test_binary_sent.csv"),
    ),
)

IMDB = Dataset(
    name="imdb",
    base_url="https://ai.stanford.edu/~amaas/data/sentiment",
    files=(
        # sha256 of the decompressed CSV, as staged in the project's shared data folder.
        OutputFile("train.csv.gz", "96533c22d2e15b7eb733b5125d1ddc379385e23488f5c35ee4e00c77ee96ddea"),
        OutputFile("test.csv.gz", "fd161758142ee66389e17e9b06a756c95049d461b2e2d6bbe3b4868d085e0aa2"),
    ),
    archive=Archive(
        "aclImdb_v1.tar.gz", "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe", convert_aclimdb
    ),
)

CORNELL_MOVIE_REVIEW_DATA = "https://www.cs.cornell.edu/people/pabo/movie-review-data"
SENTEVAL_DATA = "https://dl.fbaipublicfiles.com/senteval/senteval_data"
# One archive holds CR and MPQA (and copies of MR and SUBJ, taken here from Cornell instead).
NBSVM_ARCHIVE = "datasmall_NB_ACL12.zip"

MR = Dataset(
    name="mr",
    base_url=CORNELL_MOVIE_REVIEW_DATA,
    files=(OutputFile("mr.csv", "674f65e0da2730257765bfa03123234fa2c95f8cbd2dd618a626356c1ca00eb5"),),
    archive=Archive(
        # The checksum Hugging Face's rotten_tomatoes loader publishes for this archive (487,770 bytes).
        "rt-polaritydata.tar.gz", "a05befe52aafda71d458d188a1c54506a998b1308613ba76bbda2e5029409ce9",
        sentence_pair_converter("mr.csv", "rt-polarity.pos", "rt-polarity.neg"),
    ),
)

SUBJ = Dataset(
    name="subj",
    base_url=CORNELL_MOVIE_REVIEW_DATA,
    files=(OutputFile("subj.csv", "8d1e972dd37d8af538f50b14297372726363199d37fde277f62a82c4073d9c20"),),
    # quote.* holds the subjective review snippets (label 1), plot.* the objective plot sentences.
    archive=Archive("rotten_imdb.tar.gz", None, sentence_pair_converter("subj.csv", "quote.tok.gt9.5000", "plot.tok.gt9.5000")),
)

CR = Dataset(
    name="cr",
    base_url=SENTEVAL_DATA,
    files=(OutputFile("cr.csv", "50a1cc3db91083c149fc17c0ccb9e25a96e76ad1f9a2aca34debad005bc1af91"),),
    archive=Archive(NBSVM_ARCHIVE, None, sentence_pair_converter("cr.csv", "custrev.pos", "custrev.neg")),
)

MPQA = Dataset(
    name="mpqa",
    base_url=SENTEVAL_DATA,
    files=(OutputFile("mpqa.csv", "e621601d883f5e5c28f8ec207335f4fc42cf1048d1d871501c3f92f0c836aa79"),),
    archive=Archive(NBSVM_ARCHIVE, None, sentence_pair_converter("mpqa.csv", "mpqa.pos", "mpqa.neg")),
)

DATASETS = {dataset.name: dataset for dataset in (SST2, IMDB, MR, CR, SUBJ, MPQA)}


# --------------------------------------------------------------------------- hashing and fetching


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes, decompressed first when it is gzip."""
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        try:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        except (OSError, EOFError):
            return "unreadable gzip"
    return digest.hexdigest()


def _is_url(location: str) -> bool:
    return urllib.parse.urlparse(location).scheme in ("http", "https")


def _join(location: str, *names: str) -> str:
    if _is_url(location):
        return location.rstrip("/") + "/" + "/".join(urllib.parse.quote(name) for name in names)
    return str(Path(location, *names))


NO_INTERNET_HINT = "; without internet access use --mirror DIR"
MIRROR_HINT = " (check --mirror)"


def _fetch(location: str, destination: Path, progress: bool, hint: str = NO_INTERNET_HINT) -> bool:
    """Copy a URL or local file to ``destination``; False when it does not exist there.

    ``hint`` ends the error of a location that cannot be reached (a mirror's: check --mirror).
    """
    if not _is_url(location):
        if not Path(location).is_file():
            return False
        shutil.copyfile(location, destination)
        return True

    try:
        response = urllib.request.urlopen(location, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise UserError(f"could not download {location}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"could not download {location}: {reason}{hint}") from None
    with response, open(destination, "wb") as out:
        total = response.headers.get("Content-Length")
        bar = tqdm(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            desc=Path(urllib.parse.urlparse(location).path).name,
            disable=not progress,
        )
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        except OSError as error:
            raise UserError(f"download of {location} was cut off ({error}); run the command again") from None
        finally:
            bar.close()
    return True


def _open_url(location: str, offset: int = 0):
    """The response for ``location`` from byte ``offset`` on (a Range request); None for 404 and 416."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(location, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code in (404, 416):  # 416: nothing from ``offset`` on, the file is whole already
            return None
        raise UserError(f"could not download {location}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"could not download {location}: {reason}; without internet access use --mirror DIR") from None


def _fetch_resuming(location: str, destination: Path, progress: bool) -> bool:
    """Complete ``destination`` from a URL, keeping the bytes it already holds; False when absent there.

    The request asks for the bytes after those present (HTTP Range); a server that answers
    with the whole file instead (200) starts it over. A cut-off download leaves ``destination``
    as far as it got, for the next run to resume.
    """

    offset = destination.stat().st_size if destination.is_file() else 0
    response = _open_url(location, offset)
    if response is None:
        if offset:  # 416: the bytes are all here (or the file is not there at all: the hash says which)
            return True
        return False
    with response:
        resumed = offset > 0 and response.status == 206
        if resumed and not (response.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
            raise UserError(f"{location} answered a resumed download with other bytes; delete {destination} and retry")
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        bar = tqdm(
            total=start + int(length) if length else None, initial=start, unit="B", unit_scale=True,
            unit_divisor=1024, desc=Path(urllib.parse.urlparse(location).path).name, disable=not progress,
        )
        with open(destination, "ab" if resumed else "wb") as out:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except OSError as error:
                raise UserError(
                    f"download of {location} was cut off after {out.tell():,} bytes ({error}); "
                    "run the command again to resume it"
                ) from None
            finally:
                bar.close()
        if length and destination.stat().st_size != start + int(length):
            raise UserError(
                f"download of {location} was cut off after {destination.stat().st_size:,} of "
                f"{start + int(length):,} bytes; run the command again to resume it"
            )
    return True


def _verified(path: Path, expected: str) -> bool:
    return path.is_file() and content_sha256(path) == expected


# --------------------------------------------------------------------------- the command


def download(
    name: str,
    to: str | os.PathLike,
    *,
    mirror: str | None = None,
    progress: bool = False,
    datasets: dict[str, Dataset] = DATASETS,
) -> Path:
    """Make ``<to>/<name>/`` hold the verified files of dataset ``name``; return that directory.

    What it did (already there, fetched again, copied, downloaded) is logged (``log.info``).
    """
    if name not in datasets:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(datasets)}")
    dataset = datasets[name]
    directory = Path(to) / dataset.name
    missing = [file for file in dataset.files if not _verified(directory / file.name, file.sha256)]
    if not missing:
        log.info(f"{directory}: {', '.join(file.name for file in dataset.files)} already present and verified")
        return directory
    for file in missing:
        if (directory / file.name).exists():
            log.info(f"{directory / file.name} does not match its sha256: fetching it again")
    with storage.new_folder(directory):  # a failed first download leaves no empty folder
        try:
            if mirror is not None and _fetch_finished_files(dataset, missing, mirror, directory, progress):
                log.info(f"{directory}: copied {', '.join(file.name for file in missing)} from {mirror}")
                return directory
            if dataset.archive is not None:
                _fetch_and_convert(dataset, mirror, directory, progress)
            else:
                _fetch_source_files(dataset, missing, mirror, directory, progress)
        finally:
            for partial in directory.glob("*.partial"):
                partial.unlink()
    log.info(f"{directory}: {', '.join(file.name for file in dataset.files)} downloaded and verified")
    return directory


def _install(partial: Path, file: OutputFile, origin: str) -> None:
    actual = content_sha256(partial)
    if actual != file.sha256:
        raise UserError(
            f"{origin} has sha256 {actual}, expected {file.sha256}: the file is damaged or not the published one"
        )
    os.replace(partial, partial.with_name(file.name))


def _fetch_finished_files(dataset, files, mirror, directory, progress) -> bool:
    """Take already converted files from the mirror; False when it has none of them."""
    found = False
    for file in files:
        partial = directory / (file.name + ".partial")
        for location in (_join(mirror, dataset.name, file.name), _join(mirror, file.name)):
            if _fetch(location, partial, progress, MIRROR_HINT):
                _install(partial, file, location)
                found = True
                break
        else:
            if found:
                raise UserError(f"mirror {mirror} has some {dataset.name} files but not {file.name}")
            return False
    return True


def _source(dataset, mirror, name: str, destination: Path, progress: bool) -> str:
    """Fetch an original file from the mirror or the canonical place; return where it came from."""
    location = _join(mirror if mirror is not None else dataset.base_url, name)
    hint = NO_INTERNET_HINT if mirror is None else MIRROR_HINT
    if not _fetch(location, destination, progress, hint):
        raise UserError(f"{location} does not exist" + ("" if mirror is None else MIRROR_HINT))
    return location


def _fetch_source_files(dataset, files, mirror, directory, progress) -> None:
    for file in files:
        partial = directory / (file.name + ".partial")
        location = _source(dataset, mirror, file.source, partial, progress)
        _install(partial, file, location)


def _fetch_and_convert(dataset, mirror, directory, progress) -> None:
    archive = dataset.archive
    downloaded = directory / (archive.name + ".partial")
    location = _source(dataset, mirror, archive.name, downloaded, progress)
    actual = file_sha256(downloaded)
    if archive.sha256 is not None and actual != archive.sha256:
        raise UserError(f"{location} has sha256 {actual}, expected {archive.sha256}: damaged or not the published archive")
    archive.convert(downloaded, directory)
    for file in dataset.files:
        _install(directory / (file.name + ".partial"), file, f"{file.name} converted from {archive.name}")
