"""Hostile inputs to every reader (LC-Rec JSON, RecBole atomic, raw Amazon), property-based (hypothesis).

The property, for any bytes in any of the files: ``pipeline.prepare`` either writes a valid data directory or
raises a :class:`~pauserec.errors.PauseRecError` (the documented error types) and writes nothing; it never hangs
(a 20 s alarm per example) and never raises anything else (``KeyError``, ``RecursionError``, ``UnicodeError``...).
A reader that refused everything would satisfy that, so a second property draws the same files without defects
or damage: each must be accepted and read back as written (the same users, items, sequences and titles, up to what
the format documents: repeated pairs dropped, items without a title dropped from raw Amazon).

Generated: huge fields, deeply nested JSON, NUL and non-UTF-8 bytes, lone surrogates, duplicate users (repeated JSON
keys, repeated rows), items repeated inside a sequence, numeric ids as strings and the reverse, truncated and empty
files, and a directory where a file belongs. Example counts are small so the suite stays fast; the docs/bad-input.md table
"Bad input: what happens" lists what each case does.
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pauserec import pipeline
from pauserec.config import build_config
from pauserec.data.dataset import Dataset
from pauserec.data.readers import read_dataset
from pauserec.errors import DataError, PauseRecError

SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
HUGE = "x" * 2_000_000
DEEP = 100_000


# --- strategies: a valid dataset, then a few defects, then maybe damaged bytes -----------------------------------

def texts(max_size: int = 8) -> st.SearchStrategy[str]:
    """Short text with NUL, tabs, newlines, quotes and non-ASCII, sometimes a huge field."""
    plain = st.text(st.characters(codec="utf-8"), min_size=1, max_size=max_size)
    odd = st.sampled_from(["\x00", "a\tb", "a\nb", '"', "\\", "ü", "NaN", "1e999", "-0", "01", " "])
    return st.one_of(plain, plain, odd, st.just(HUGE))


NUMERIC = st.integers(0, 30)
ids = st.one_of(NUMERIC.map(str), texts(4))
TSV_BREAKS = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
# a RecBole cell holds no tab or line break, and an item row "<id>\t<title>" must not be blank (blank lines are skipped)
tsv_ids = ids.filter(lambda i: i.strip() != "" and i == i.translate(TSV_BREAKS))
DAMAGE = ["truncate", "insert", "empty", "bom", "directory"]


def damage(draw, data: bytes) -> bytes | None:
    """``data`` damaged: truncated, a hostile byte inserted, emptied, a BOM; None = a directory in its place."""
    kind = draw(st.sampled_from(DAMAGE))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\r", b"\n\n", b"\t", b'"', b"{", b"]"]))
        return data[:at] + junk + data[at:]
    return {"empty": b"", "bom": b"\xef\xbb\xbf" + data, "directory": None}[kind]


def maybe_damaged(draw, files: dict[str, bytes]) -> dict[str, bytes | None]:
    """At most one file damaged (one time in four), so that most examples reach the later stages."""
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(files)))
        files = {**files, name: damage(draw, files[name])}
    return files


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")  # a lone surrogate becomes invalid UTF-8 bytes


@dataclass(frozen=True)
class Written:
    """A valid dataset before it is written: the catalogue (item id -> title, in file order) and each user's items
    in time order (every user has at least 2 known items)."""

    titles: dict[str, str]
    sequences: dict[str, list[str]]

    @property
    def items(self) -> list[str]:
        return list(self.titles)


@st.composite
def valid_dataset(draw, id_strategy: st.SearchStrategy[str] = ids) -> Written:
    items = draw(st.lists(id_strategy, min_size=2, max_size=6, unique=True))
    users = draw(st.lists(id_strategy, min_size=1, max_size=5, unique=True))
    return Written({i: draw(texts()) for i in items},
                   {u: draw(st.lists(st.sampled_from(items), min_size=2, max_size=6)) for u in users})


def is_int_text(item: str) -> bool:
    """``item`` is what ``str(int(item))`` gives back (``"7"``, not ``"07"`` or ``"²"``)."""
    return item.isascii() and item.isdigit() and len(item) < 5 and str(int(item)) == item


def as_written(draw, item: str):
    """An item id as the file writes it: a numeric id may be a JSON number (the reverse of a string id)."""
    return int(item) if is_int_text(item) and draw(st.booleans()) else item


def pair(key, value: str) -> str:
    return f"{json.dumps(key)}: {value}"


def nested(depth: int, inner: str = '"x"') -> str:
    return "[" * depth + inner + "]" * depth


LCREC_DEFECTS = ["huge_title", "deep_field", "deep_sequence", "surrogate", "duplicate_user", "unknown_item",
                 "float_item", "bool_item", "object_in_sequence", "record_not_object", "no_title", "number_title",
                 "list_title", "nan_title", "huge_int"]


@st.composite
def lcrec_files(draw, written: Written | None = None, hostile: bool = True) -> dict[str, bytes | None]:
    """LC-Rec JSON files of ``written`` (drawn when None); ``hostile``: with up to two defects, maybe damaged."""
    written = written or draw(valid_dataset())
    items, seqs = written.items, written.sequences
    records = {i: {"title": t, "categories": draw(st.lists(texts(), max_size=2))} for i, t in written.titles.items()}
    item_text = {i: json.dumps(r) for i, r in records.items()}
    seq_text = {u: json.dumps([as_written(draw, i) for i in seq]) for u, seq in seqs.items()}
    users = list(seqs)
    defects = draw(st.lists(st.sampled_from(LCREC_DEFECTS), max_size=2)) if hostile else []
    for defect in defects:
        item, user = draw(st.sampled_from(items)), draw(st.sampled_from(users))
        depth = draw(st.sampled_from([3, 50, 5_000, DEEP]))
        item_text[item] = {
            "huge_title": json.dumps({"title": HUGE}), "deep_field": '{"title": "t", "categories": ' + nested(depth) + "}",
            "surrogate": '{"title": "a\\ud800b"}', "record_not_object": "[1, 2]", "no_title": '{"brand": "b"}',
            "number_title": '{"title": 12}', "list_title": '{"title": ["a", ["b", null]]}', "nan_title": '{"title": NaN}',
        }.get(defect, item_text[item])
        seq_text[user] = {
            "deep_sequence": "[" + nested(depth, "1") + "]", "unknown_item": '["no such item", 1]',
            "float_item": "[1.0, 2]", "bool_item": "[true, 1]", "object_in_sequence": '[{"a": 1}, 1]',
            "huge_int": "[" + "9" * 5000 + "]",
        }.get(defect, seq_text[user])
    inter_pairs = [pair(u, t) for u, t in seq_text.items()]
    if "duplicate_user" in defects:
        inter_pairs.append(pair(users[0], seq_text[users[0]]))  # the same user twice
    files = {
        "X.item.json": encode("{" + ", ".join(pair(i, t) for i, t in item_text.items()) + "}"),
        "X.inter.json": encode("{" + ", ".join(inter_pairs) + "}"),
    }
    return maybe_damaged(draw, files) if hostile else files


TIMES = ["nan", "inf", "-inf", "1e999", "", "3.5", "x", "9" * 5000, "-1"]
RECBOLE_DEFECTS = ["duplicate_column", "bad_time", "extra_cell", "missing_cell", "nul_id", "empty_id", "unknown_item",
                   "duplicate_row", "crlf", "no_item_column", "unknown_type", "huge_cell", "tab_in_title"]


def tsv_cell(text: str) -> str:
    return text.translate(TSV_BREAKS)


@st.composite
def recbole_files(draw, written: Written | None = None, hostile: bool = True) -> dict[str, bytes | None]:
    """RecBole atomic files of ``written`` (drawn when None; its ids with a tab or a line break changed);
    ``hostile``: with up to two defects, maybe damaged."""
    written = written or draw(valid_dataset())
    cell = {i: tsv_cell(i) or "_" for i in [*written.items, *written.sequences]}  # a cell holds no tab
    header = ["user_id:token", "item_id:token", "timestamp:float"]
    rows = [[cell[u], cell[i], str(t)] for u, seq in written.sequences.items() for t, i in enumerate(seq)]
    item_header = ["item_id:token", "title:token_seq"]
    item_rows = [[cell[i], tsv_cell(title)] for i, title in written.titles.items()]
    newline = "\n"
    for defect in draw(st.lists(st.sampled_from(RECBOLE_DEFECTS), max_size=2)) if hostile else []:
        row = draw(st.sampled_from(rows))
        if defect == "duplicate_column":
            header, rows = header + ["user_id:token"], [r + ["u"] for r in rows]
        elif defect == "bad_time":
            row[2] = draw(st.sampled_from(TIMES))
        elif defect == "extra_cell":
            row.append("extra")
        elif defect == "missing_cell":
            row.pop()
        elif defect in ("nul_id", "empty_id"):
            row[0] = row[0] + "\x00" if defect == "nul_id" else ""
        elif defect == "unknown_item":
            row[1] = "no such item"
        elif defect == "duplicate_row":
            rows.append(list(row))
        elif defect == "crlf":
            newline = "\r\n"
        elif defect == "no_item_column":
            item_header = ["id:token", "title:token_seq"]
        elif defect == "unknown_type":
            header = ["user_id:token", "item_id:weird", "timestamp:float"]
        elif defect == "huge_cell":
            item_rows[0][1] = HUGE
        elif defect == "tab_in_title":
            item_rows[0][1] = "a\tb"

    def table(head: list[str], body: list[list[str]]) -> bytes:
        return encode(newline.join("\t".join(r) for r in [head, *body]) + newline)

    files = {"X.inter": table(header, rows), "X.item": table(item_header, item_rows)}
    return maybe_damaged(draw, files) if hostile else files


AMAZON_DEFECTS = ["huge_int_time", "nan_time", "inf_time", "string_time", "bool_time", "list_user", "float_asin",
                  "bool_asin", "missing_key", "not_object", "deep_review", "deep_title", "python_literal_meta",
                  "duplicate_meta", "duplicate_review", "int_ids", "meta_without_asin", "huge_title", "surrogate"]


@st.composite
def amazon_files(draw, written: Written | None = None, hostile: bool = True) -> dict[str, bytes | None]:
    """Raw Amazon reviews and metadata of ``written`` (drawn when None); ``hostile``: with up to two defects, maybe
    damaged."""
    written = written or draw(valid_dataset())
    reviews = [{"reviewerID": u, "asin": i, "unixReviewTime": 1000 + t}
               for u, seq in written.sequences.items() for t, i in enumerate(seq)]
    lines = [json.dumps(r) for r in reviews]
    metas = [{"asin": i, "title": title, "category": ["Lab", draw(texts(3))]} for i, title in written.titles.items()]
    meta_lines = [json.dumps(m) for m in metas]
    for defect in draw(st.lists(st.sampled_from(AMAZON_DEFECTS), max_size=2)) if hostile else []:
        n = draw(st.integers(0, len(lines) - 1))
        r = dict(reviews[n])
        if defect in ("huge_int_time", "nan_time", "inf_time", "string_time", "bool_time"):
            value = {"huge_int_time": "1" * 400, "nan_time": "NaN", "inf_time": "1e999", "string_time": '"soon"',
                     "bool_time": "true"}[defect]
            lines[n] = json.dumps(r)[:-1] + ', "unixReviewTime": ' + value + "}"  # a repeated key, last one bad
            lines[n] = lines[n].replace('"unixReviewTime": %d, ' % r["unixReviewTime"], "")
        elif defect in ("list_user", "float_asin", "bool_asin"):
            key, value = {"list_user": ("reviewerID", [r["reviewerID"]]), "float_asin": ("asin", 1.5),
                          "bool_asin": ("asin", True)}[defect]
            lines[n] = json.dumps({**r, key: value})
        elif defect == "missing_key":
            lines[n] = json.dumps({k: v for k, v in r.items() if k != draw(st.sampled_from(sorted(r)))})
        elif defect == "not_object":
            lines[n] = json.dumps([r])
        elif defect == "deep_review":
            lines[n] = nested(draw(st.sampled_from([50, 5_000, DEEP])), "1")
        elif defect == "deep_title":
            meta_lines[0] = '{"asin": %s, "title": %s}' % (json.dumps(metas[0]["asin"]), nested(draw(st.sampled_from([50, 5_000]))))
        elif defect == "python_literal_meta":
            meta_lines = [repr(m) for m in metas]  # the 2014 release
        elif defect == "duplicate_meta":
            meta_lines.append(meta_lines[0])
        elif defect == "duplicate_review":
            lines.append(lines[n])
        elif defect == "int_ids" and is_int_text(r["asin"]):
            lines = [line.replace(f'"asin": "{r["asin"]}"', f'"asin": {int(r["asin"])}') for line in lines]
        elif defect == "meta_without_asin":
            meta_lines.append('{"title": "orphan"}')
        elif defect == "huge_title":
            meta_lines[0] = json.dumps({**metas[0], "title": HUGE})
        elif defect == "surrogate":
            meta_lines[0] = '{"asin": %s, "title": "a\\udc80"}' % json.dumps(metas[0]["asin"])
    files = {"Lab_5.json": encode("\n".join(lines) + "\n"), "meta_Lab.json": encode("\n".join(meta_lines) + "\n")}
    return maybe_damaged(draw, files) if hostile else files


# --- the property ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def no_hang(seconds: int = 20):
    def fail(signum, frame):
        raise TimeoutError(f"a reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def write_files(root: Path, files: dict[str, bytes | None]) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    for name, data in files.items():
        if data is None:
            (src / name).mkdir()
            (src / name / "inside").write_bytes(b"{}")
        else:
            (src / name).write_bytes(data)
    return src


def prepare(root: Path, files: dict[str, bytes | None], fmt: str) -> Dataset:
    """``pipeline.prepare`` of the files written under ``root`` into ``root / "out"`` (2 interactions, no k-core)."""
    src = write_files(root, files)
    cfg = build_config(overrides=[f"data.path={src}", f"data.format={fmt}", "data.min_interactions=2",
                                  "data.kcore=0", f"cache_dir={root / 'cache'}"])
    with no_hang():
        return pipeline.prepare(cfg, root / "out")


def prepared_or_refused(files: dict[str, bytes | None], fmt: str) -> None:
    """Prepare the files: a valid data directory, or a documented error and nothing written."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = root / "out"
        try:
            dataset = prepare(root, files, fmt)
        except PauseRecError as e:
            assert str(e), "an error must say what is wrong"
            assert not out.exists() or not any(out.iterdir()), "a refused input left files behind"
            return
        check_dataset(dataset, out)


def check_dataset(dataset: Dataset, out: Path) -> None:
    assert dataset.n_users > 0 and dataset.n_items > 0
    assert len(set(dataset.item_ids)) == dataset.n_items and len(set(dataset.user_ids)) == dataset.n_users
    assert all(len(s) >= 2 and all(0 <= i < dataset.n_items for i in s) for s in dataset.sequences)
    assert all(isinstance(v, str) for fields in dataset.item_fields for v in fields.values())
    loaded = Dataset.load(out / "dataset.json")
    assert loaded.content_hash() == dataset.content_hash()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@SETTINGS
@given(files=lcrec_files())
def test_lcrec_reader_on_hostile_files(files):
    prepared_or_refused(files, "lcrec")


@SETTINGS
@given(files=recbole_files())
def test_recbole_reader_on_hostile_files(files):
    prepared_or_refused(files, "recbole")


@SETTINGS
@given(files=amazon_files())
def test_amazon_reader_on_hostile_files(files):
    prepared_or_refused(files, "amazon")


# --- the same files without defects: accepted, and read back as written --------------------------------------------

FILES: dict[str, Callable[..., st.SearchStrategy[dict[str, bytes | None]]]] = {
    "lcrec": lcrec_files, "recbole": recbole_files, "amazon": amazon_files}
CLEAN_IDS = {"lcrec": ids, "recbole": tsv_ids, "amazon": ids}


@st.composite
def clean_files(draw, fmt: str) -> tuple[Written, dict[str, bytes | None]]:
    """A valid dataset (with ids the format can hold) and its files in ``fmt``, without defects or damage."""
    written = draw(valid_dataset(CLEAN_IDS[fmt]))
    return written, draw(FILES[fmt](written, hostile=False))


def dedupe(seq: list[str]) -> list[str]:
    return list(dict.fromkeys(seq))


def expected_read(written: Written, fmt: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({user: [item, ...]}, {item: title})`` a reader must make of ``written``, by what docs/bad-input.md says:
    LC-Rec keeps every item of the item file and repeats inside a sequence; RecBole and raw Amazon keep a user's first
    event of an item and only the items someone interacted with; raw Amazon drops items without a title; titles are
    stripped (RecBole's are read as the cell holds them); users left with fewer than 2 items are dropped."""
    titles = {i: t if fmt == "recbole" else t.strip() for i, t in written.titles.items()}
    if fmt == "recbole":
        titles = {i: tsv_cell(t) for i, t in titles.items()}
    sequences = written.sequences
    if fmt == "amazon":
        sequences = {u: [i for i in seq if titles[i]] for u, seq in sequences.items()}
    if fmt != "lcrec":
        sequences = {u: dedupe(seq) for u, seq in sequences.items()}
    sequences = {u: seq for u, seq in sequences.items() if len(seq) >= 2}
    if fmt != "lcrec":
        titles = {i: t for i, t in titles.items() if any(i in seq for seq in sequences.values())}
    return sequences, titles


def read_back(dataset: Dataset) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({user: [item, ...]}, {item: title})`` of a dataset, in external ids."""
    sequences = {dataset.user_ids[u]: [dataset.item_ids[i] for i in seq] for u, seq in enumerate(dataset.sequences)}
    return sequences, {i: f["title"] for i, f in zip(dataset.item_ids, dataset.item_fields, strict=True)}


def accepted_as_written(written: Written, files: dict[str, bytes | None], fmt: str) -> None:
    """The clean files are prepared without an error, and the stored data directory reads back as written."""
    sequences, titles = expected_read(written, fmt)
    assume(sequences)  # raw Amazon: every item may lack a title; then refusing is right
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp), files, fmt)
        stored = Dataset.load(Path(tmp) / "out" / "dataset.json")
    assert read_back(stored) == (sequences, titles)


@SETTINGS
@given(draw=clean_files("lcrec"))
def test_lcrec_reader_reads_clean_files_as_written(draw):
    accepted_as_written(*draw, "lcrec")


@SETTINGS
@given(draw=clean_files("recbole"))
def test_recbole_reader_reads_clean_files_as_written(draw):
    accepted_as_written(*draw, "recbole")


@SETTINGS
@given(draw=clean_files("amazon"))
def test_amazon_reader_reads_clean_files_as_written(draw):
    accepted_as_written(*draw, "amazon")


# --- the cases one by one (what the docs/bad-input.md table says) ----------------------------------------------------------


def read(tmp_path: Path, files: dict[str, bytes | None], fmt: str = "auto", **kw) -> Dataset:
    src = write_files(tmp_path, files)
    return read_dataset(src, fmt, min_interactions=2, **kw)


ITEMS = {"1": {"title": "a"}, "2": {"title": "b"}, "3": {"title": "c"}}


def lcrec(inter: str, items: dict | None = None) -> dict[str, bytes]:
    return {"X.item.json": json.dumps(items or ITEMS).encode(), "X.inter.json": inter.encode()}


@pytest.mark.parametrize("inter, message", [
    ('{"u": [1, 2], "u": [2, 3]}', "key appears twice"),  # a duplicate user
    ('{"u": [' + "[" * DEEP + "]" * DEEP + "]}", "nested too deeply"),
    ('{"u": [1, ' + "9" * 5000 + "]}", "unreadable JSON value"),
    ('{"u": [1, 2.0]}', "neither an integer nor a string"),
    ('{"u": [1, true]}', "neither an integer nor a string"),
    ('{"u": [1, "01"]}', "'01' is not in the item file"),  # "01" is not "1": ids are compared as written
    ('{"u\\ud800": [1, 2]}', "lone surrogate"),
    ("", "file is empty"),
])
def test_lcrec_cases(tmp_path, inter, message):
    with pytest.raises(DataError, match=message):
        read(tmp_path, lcrec(inter))


def test_lcrec_numeric_ids_either_way_and_repeated_items(tmp_path):
    ds = read(tmp_path, lcrec('{"7": [1, "2", 3, 1], "8": ["1", 2]}'))
    assert ds.user_ids == ["7", "8"] and ds.item_ids == ["1", "2", "3"]
    assert ds.sequences == [[0, 1, 2, 0], [0, 1]]  # 1 and "1" are one item; a repeat inside a sequence is kept
    assert ds.notes["repeated_items_in_sequences"] == 1


def test_lcrec_nul_and_huge_fields_are_text(tmp_path):
    items = {"1": {"title": "a\x00b"}, "2": {"title": HUGE, "categories": [[["x"]] * 3]}}
    ds = read(tmp_path, lcrec('{"u": [1, 2]}', items))
    assert ds.item_fields[0]["title"] == "a\x00b" and len(ds.item_fields[1]["title"]) == len(HUGE)


def test_lcrec_deeply_nested_field_is_flattened_without_recursion(tmp_path):
    deep = "[" * 5000 + '"x"' + "]" * 5000
    raw = '{"1": {"title": "a"}, "2": {"title": "b", "categories": ' + deep + "}}"
    src = {"X.item.json": raw.encode(), "X.inter.json": b'{"u": [1, 2]}'}
    try:
        ds = read(tmp_path, src)
    except DataError as e:  # json's own nesting limit may refuse it first
        assert "nested too deeply" in str(e)
    else:
        assert ds.item_fields[1]["categories"] == "x"


def test_directory_where_a_file_belongs(tmp_path):
    with pytest.raises(DataError, match="not a regular file|no supported layout"):
        read(tmp_path / "a", {"X.item.json": None, "X.inter.json": b'{"u": [1, 2]}'}, "lcrec")
    with pytest.raises(DataError):
        read(tmp_path / "b", {"X.inter": None, "X.item": b"item_id:token\n1\n"}, "recbole")
    with pytest.raises(DataError):
        read(tmp_path / "c", {"Lab_5.json": None, "meta_Lab.json": b'{"asin": "1"}\n'}, "amazon")


RB_ITEMS = b"item_id:token\ttitle:token_seq\n1\ta\n2\tb\n"


@pytest.mark.parametrize("inter, message", [
    (b"user_id:token\titem_id:token\tuser_id:token\nu\t1\tv\n", "'user_id' twice"),
    (b"user_id:token\titem_id:token\ttimestamp:float\nu\t1\tnan\n", "not a finite number"),
    (b"user_id:token\titem_id:token\ttimestamp:float\nu\t1\t1e999\n", "not a finite number"),
    (b"user_id:token\titem_id:token\nu\t1\textra\n", "3 tab-separated fields"),
    (b"user_id:token\titem_id:token\nu\t\xff\n", "not valid UTF-8"),
    (b"\n\n", "file is empty"),
])
def test_recbole_cases(tmp_path, inter, message):
    with pytest.raises(DataError, match=message):
        read(tmp_path, {"X.inter": inter, "X.item": RB_ITEMS})


def test_recbole_duplicate_rows_and_nul(tmp_path):
    inter = b"user_id:token\titem_id:token\nu\x00\t1\nu\x00\t2\nu\x00\t1\n"
    ds = read(tmp_path, {"X.inter": inter, "X.item": RB_ITEMS})
    assert ds.user_ids == ["u\x00"] and ds.sequences == [[0, 1]] and ds.notes["duplicate_interactions"] == 1


def review(user, item, t=1) -> str:
    return json.dumps({"reviewerID": user, "asin": item, "unixReviewTime": t})


@pytest.mark.parametrize("line, message", [
    ('{"reviewerID": "u", "asin": "1", "unixReviewTime": ' + "1" * 400 + "}", "not a finite number"),
    ('{"reviewerID": "u", "asin": "1", "unixReviewTime": NaN}', "not a finite number"),
    ('{"reviewerID": ["u"], "asin": "1", "unixReviewTime": 1}', "must be a string or an integer"),
    ('{"reviewerID": "u", "asin": 1.5, "unixReviewTime": 1}', "must be a string or an integer"),
    ('{"reviewerID": "u", "asin": true, "unixReviewTime": 1}', "must be a string or an integer"),
])
def test_amazon_cases(tmp_path, line, message):
    meta = b'{"asin": "1", "title": "a"}\n{"asin": "2", "title": "b"}\n'
    with pytest.raises(DataError, match=message):
        read(tmp_path, {"Lab_5.json": (line + "\n" + review("u", "2") + "\n").encode(), "meta_Lab.json": meta},
             kcore=0)


def test_amazon_numeric_ids_either_way(tmp_path):
    reviews = "\n".join([review(7, 1, 1), review("7", "2", 2), review("8", 1, 3), review(8, "2", 4)]) + "\n"
    meta = "{'asin': 1, 'title': 'a'}\n{'asin': '2', 'title': 'b'}\n"  # 2014 Python literals, an int asin
    ds = read(tmp_path, {"Lab_5.json": reviews.encode(), "meta_Lab.json": meta.encode()}, kcore=0)
    assert ds.user_ids == ["7", "8"] and ds.item_ids == ["1", "2"] and ds.sequences == [[0, 1], [0, 1]]


def test_huge_numeric_ids_sort_without_int_limits(tmp_path):
    big = "9" * 5000
    ds = read(tmp_path, lcrec(json.dumps({big: [1, 2], "10": [2, 3], "9": [1, 3]})))
    assert ds.user_ids == ["9", "10", big]



def test_amazon_metadata_of_an_escaped_asin_is_found(tmp_path):
    """A non-ASCII asin as json.dumps writes it ("\\u00fc"): the cheap asin scan must not skip its metadata line."""
    reviews = "\n".join(json.dumps({"reviewerID": "u", "asin": a, "unixReviewTime": t}) for t, a in enumerate("üa"))
    meta = "\n".join(json.dumps({"asin": a, "title": f"t{a}"}) for a in "üa")
    assert "\\u00fc" in meta
    ds = read(tmp_path, {"Lab_5.json": reviews.encode(), "meta_Lab.json": meta.encode()}, kcore=0)
    assert ds.sequences == [[ds.item_ids.index("ü"), ds.item_ids.index("a")]] and ds.item_fields[0]["title"] != ""
