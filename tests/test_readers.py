"""Readers (LC-Rec JSON, RecBole atomic files, raw Amazon 2014/2018), detection, filters and bad input."""

from __future__ import annotations

import gzip
import importlib.util
import json
import time
from pathlib import Path

import pytest

from pauserec.data import readers
from pauserec.data.filters import drop_short_users, kcore_filter
from pauserec.data.readers import detect_format, read_dataset, resolve_builtin
from pauserec.errors import DataError

SCIENTIFIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon-scientific"


# --- writing small files in the real formats ----------------------------------------------------


def write(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def item(title: str, **extra: str) -> dict:
    return {"title": title, "description": "", "brand": "", "categories": "", **extra}


@pytest.fixture
def lcrec_dir(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "lcrec"
    tmp_path.mkdir()
    items = {str(i): item(f"Item {i}") for i in (0, 1, 2, 3, 10)}
    items["1"] = item("Beaker &amp; lid", brand="Pyrex", categories="Lab,Glass", description="Borosilicate.")
    inter = {"10": [3, 0, 1], "2": [1, 2, 3, 0], "1": [0, 1, 2]}
    write(tmp_path / "Tiny.item.json", json.dumps(items, indent=1))
    write(tmp_path / "Tiny.inter.json", json.dumps(inter))
    return tmp_path


ML_INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "7\t20\t4\t300\n"
    "7\t10\t5\t100\n"
    "7\t30\t3\t200\n"
    "7\t40\t3\t200\n"  # tie with item 30: file order
    "7\t10\t1\t400\n"  # repeat of (7, 10): dropped
    "12\t10\t4\t50\n"
    "12\t20\t2\t60\n"
    "12\t30\t2\t70\n"
    "9\t99\t1\t10\n"  # 2 interactions: too short
    "9\t10\t1\t20\n"
)
ML_ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "10\tToy Story\t1995\tAnimation Children's Comedy\n"
    "20\tHeat\t1995\tAction Crime Thriller\n"
    "30\tCasino\t1995\tDrama\n"
    "40\tSe7en\t1995\tThriller\n"
    "99\tNobody Watches This\t2001\tDrama\n"
    "50\tNever Rated\t1990\tDrama\n"
)


@pytest.fixture
def recbole_dir(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "recbole"
    tmp_path.mkdir()
    write(tmp_path / "mini.inter", ML_INTER)
    write(tmp_path / "mini.item", ML_ITEM)
    return tmp_path


# Reviews in file order. Worked by hand for kcore=2, min_interactions=2:
#   time order + repeats: U1 = B C A, U2 = A B (tie at t=5: file order; second A dropped), U3 = C X N, U4 = D A
#   no metadata (X) and no title (N) dropped: U3 = C
#   2-core: D (1 review) goes -> U4 = A goes, U3 = C goes -> C has 1 review left and goes -> U1 = B A, U2 = A B
REVIEWS = [
    ("U1", "A", 30),
    ("U1", "B", 10),
    ("U1", "C", 20),
    ("U2", "A", 5),
    ("U2", "B", 5),
    ("U2", "A", 7),
    ("U3", "C", 1),
    ("U3", "X", 2),
    ("U3", "N", 3),
    ("U4", "D", 1),
    ("U4", "A", 2),
]


def review_lines(rows=REVIEWS) -> str:
    return jsonl([{"reviewerID": u, "asin": a, "unixReviewTime": t, "overall": 5.0} for u, a, t in rows])


def meta_2018() -> str:
    rows = [
        {
            "asin": "A",
            "title": "Beaker &amp; lid",
            "brand": "Pyrex",
            "category": ["Industrial & Scientific", "Lab"],
            "description": ["Line one.", "Line two."],
        },
        {"asin": "B", "title": "Burette", "brand": "", "category": [], "description": []},
        {"asin": "C", "title": "Clamp", "category": ["Lab"]},
        {"asin": "D", "title": "Dropper"},
        {"asin": "N", "title": "", "brand": "NoTitle"},
        {"asin": "Z", "title": "Never reviewed"},
    ]
    return jsonl(rows)


def meta_2014() -> str:
    rows = [
        {
            "asin": "A",
            "title": "Beaker &amp; lid",
            "brand": "Pyrex",
            "categories": [["Industrial & Scientific", "Lab"], ["Industrial & Scientific", "Glass"]],
            "description": "Line one. Line two.",
            "related": {"also_bought": ["B"]},
        },
        {"asin": "B", "title": "Burette", "categories": [[]]},
        {"asin": "C", "title": "Clamp", "categories": [["Lab"]]},
        {"asin": "D", "title": "Dropper", "price": 3.5},
        {"asin": "N", "brand": "NoTitle"},
    ]
    return "".join(repr(r) + "\n" for r in rows)  # Python literals with single quotes, as in the 2014 dump


@pytest.fixture
def amazon2018(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "a2018"
    tmp_path.mkdir()
    write(tmp_path / "Lab_5.json.gz", review_lines())
    write(tmp_path / "meta_Lab.json.gz", meta_2018())
    return tmp_path


@pytest.fixture
def amazon2014(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "a2014"
    tmp_path.mkdir()
    write(tmp_path / "reviews_Lab_5.json.gz", review_lines())
    write(tmp_path / "meta_Lab.json.gz", meta_2014())
    return tmp_path


def seqs(ds) -> dict[str, list[str]]:
    return {u: [ds.item_ids[i] for i in s] for u, s in zip(ds.user_ids, ds.sequences, strict=True)}


def raises(match_parts: list[str], fn, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    for part in match_parts:
        assert part in str(info.value), f"{part!r} not in {str(info.value)!r}"
    return info.value


# --- filters -------------------------------------------------------------------------------------


def test_kcore_cascades_until_stable():
    s = {"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["c", "d"], "u4": ["a"]}
    # Round 1: d goes, so u3 (c) and u4 (a) fall under 2; round 2: c is left once and goes.
    assert kcore_filter(s, 2) == {"u1": ["a", "b"], "u2": ["a", "b"]}
    assert s["u3"] == ["c", "d"]  # input untouched


def test_kcore_accepts_pairs_and_off_switch():
    pairs = [("u1", "a"), ("u2", "a"), ("u1", "b"), ("u2", "b"), ("u3", "a")]
    assert kcore_filter(pairs, 2) == {"u1": ["a", "b"], "u2": ["a", "b"]}
    assert kcore_filter(pairs, 0) == {"u1": ["a", "b"], "u2": ["a", "b"], "u3": ["a"]}
    assert kcore_filter(pairs, 3) == {}


def test_drop_short_users_drop_and_error():
    s = {"a": ["1", "2", "3"], "b": ["1"], "c": ["1", "2"]}
    kept, dropped = drop_short_users(s, 3)
    assert kept == {"a": ["1", "2", "3"]} and dropped == 2
    err = raises(["'b'", "2 user(s)", "min_interactions=3"], drop_short_users, s, 3, "error", path="x.json")
    assert err.key == "b" and str(err.path) == "x.json"


# --- LC-Rec --------------------------------------------------------------------------------------


def test_lcrec_reads_sorted_catalogue_and_users(lcrec_dir: Path):
    ds = read_dataset(lcrec_dir)
    assert ds.name == "Tiny"
    assert ds.item_ids == ["0", "1", "2", "3", "10"]  # numeric order; item 10 unused but in the catalogue
    assert ds.user_ids == ["1", "2", "10"]
    assert seqs(ds) == {"1": ["0", "1", "2"], "2": ["1", "2", "3", "0"], "10": ["3", "0", "1"]}
    assert ds.sequences[1] == [1, 2, 3, 0]
    assert ds.item_fields[1] == {
        "title": "Beaker &amp; lid", "description": "Borosilicate.", "brand": "Pyrex", "categories": "Lab,Glass"
    }
    assert ds.notes["dropped_short_users"] == 0


def test_lcrec_either_file_and_string_ids(tmp_path: Path, lcrec_dir: Path):
    assert read_dataset(lcrec_dir / "Tiny.item.json", "lcrec").n_interactions == 10
    d = tmp_path / "s"
    d.mkdir()
    write(d / "S.item.json", json.dumps({k: item(k) for k in ("b", "a", "c", "10", "9")}))
    write(d / "S.inter.json", json.dumps({"zed": ["a", "b", "c"], "amy": ["c", "b", "a"]}))
    ds = read_dataset(d / "S.inter.json")
    assert ds.item_ids == ["10", "9", "a", "b", "c"]  # not all integers: lexicographic
    assert ds.user_ids == ["amy", "zed"]


def test_lcrec_gzipped_pair(tmp_path: Path, lcrec_dir: Path):
    import gzip

    for name in ("Tiny.inter.json", "Tiny.item.json"):
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress((lcrec_dir / name).read_bytes()))
    ds = read_dataset(tmp_path)
    assert ds.name == "Tiny" and ds.content_hash() == read_dataset(lcrec_dir).content_hash()
    assert read_dataset(tmp_path / "Tiny.item.json.gz").n_interactions == 10


def test_builtin_scientific_is_the_shared_data():
    ds = read_dataset("builtin:amazon-scientific")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (8317, 4344, 58492)
    if SCIENTIFIC.exists():
        assert ds.content_hash() == read_dataset(SCIENTIFIC).content_hash()


def test_lcrec_short_users(lcrec_dir: Path):
    ds = read_dataset(lcrec_dir, min_interactions=4)
    assert ds.user_ids == ["2"] and ds.notes["dropped_short_users"] == 2
    assert ds.n_items == 5  # the item file stays the catalogue
    # The first short user in file order is named.
    err = raises(["Tiny.inter.json", "key '10'", "2 user(s)"], read_dataset, lcrec_dir, min_interactions=4,
                 short_users="error")
    assert err.key == "10"


def test_lcrec_item_without_title(lcrec_dir: Path):
    items = json.loads((lcrec_dir / "Tiny.item.json").read_text())
    del items["3"]["title"]
    write(lcrec_dir / "Tiny.item.json", json.dumps(items))
    raises(["Tiny.item.json", "key '3'", "title"], read_dataset, lcrec_dir)


def test_lcrec_unknown_item_names_user_and_item(lcrec_dir: Path):
    write(lcrec_dir / "Tiny.inter.json", json.dumps({"1": [0, 1, 2], "5": [0, 77, 1]}))
    err = raises(["Tiny.inter.json", "key '5'", "'77'", "Tiny.item.json"], read_dataset, lcrec_dir)
    assert err.key == "5"


def test_lcrec_malformed_json_line_and_column(lcrec_dir: Path):
    write(lcrec_dir / "Tiny.inter.json", '{\n  "1": [0, 1, 2],\n  "2": [0, 1 2]\n}\n')
    raises(["Tiny.inter.json", "line 3", "column 14", "malformed JSON"], read_dataset, lcrec_dir)


def test_lcrec_missing_empty_non_utf8_and_repeated_key(lcrec_dir: Path):
    (lcrec_dir / "Tiny.item.json").unlink()
    raises(["Tiny.item.json", "not found"], read_dataset, lcrec_dir)
    write(lcrec_dir / "Tiny.item.json", "  \n")
    raises(["Tiny.item.json", "empty"], read_dataset, lcrec_dir)
    write(lcrec_dir / "Tiny.item.json", b'{"0": {"title": "ok"},\n "1": {"title": "caf\xe9"}}')
    raises(["Tiny.item.json", "line 2", "byte offset 43", "UTF-8"], read_dataset, lcrec_dir)
    write(lcrec_dir / "Tiny.item.json", json.dumps({"0": item("x")}))
    write(lcrec_dir / "Tiny.inter.json", '{"1": [0, 0, 0], "1": [0, 0, 0]}')
    raises(["Tiny.inter.json", "key '1'", "twice"], read_dataset, lcrec_dir)


# --- RecBole -------------------------------------------------------------------------------------


def test_recbole_time_order_ties_repeats_and_fields(recbole_dir: Path):
    ds = read_dataset(recbole_dir)
    assert ds.name == "mini"
    assert seqs(ds) == {"7": ["10", "30", "40", "20"], "12": ["10", "20", "30"]}  # user 9 too short
    assert ds.user_ids == ["7", "12"]  # numeric order
    assert ds.item_ids == ["10", "20", "30", "40"]  # only items left in the interactions
    toy_story = {"title": "Toy Story", "release_year": "1995", "categories": "Animation,Children's,Comedy"}
    assert ds.item_fields[0] == toy_story
    assert ds.notes["duplicate_interactions"] == 1
    assert ds.notes["dropped_short_users"] == 1
    assert ds.notes["time_ties"] == 1
    assert ds.timestamps == [[100.0, 200.0, 200.0, 300.0], [50.0, 60.0, 70.0]]  # kept, aligned with the items


def test_recbole_without_timestamp_keeps_file_order(tmp_path: Path):
    write(tmp_path / "f.inter", "item_id:token\tuser_id:token\nb\tu\na\tu\nc\tu\n")
    write(tmp_path / "f.item", "item_id:token\ttitle:token_seq\tgenre:token_seq\tbrand:token\n"
          "a\tA\tx y\tAcme\nb\tB\tz\t\nc\tC\t\t\n")
    ds = read_dataset(tmp_path / "f.inter")
    assert seqs(ds) == {"u": ["b", "a", "c"]}
    assert ds.item_fields[0] == {"title": "A", "categories": "x,y", "brand": "Acme"}
    assert ds.notes["time_ties"] == "no timestamp column"
    assert ds.timestamps is None


@pytest.mark.parametrize(
    ("inter", "item", "parts"),
    [
        ("user_id:token\titem:token\n1\t2\n", ML_ITEM, ["mini.inter", "line 1", "'item_id'"]),
        ("user_id\titem_id:token\n1\t2\n", ML_ITEM, ["mini.inter", "line 1", "key 'user_id'", "name:type"]),
        ("user_id:token\titem_id:tok\n1\t2\n", ML_ITEM, ["mini.inter", "line 1", "unknown field type"]),
        ("user_id:token\titem_id:token\n1\t10\n1\t20\t5\n", ML_ITEM, ["mini.inter", "line 3", "3 tab-separated"]),
        ("user_id:token\titem_id:token\ttimestamp:float\n1\t10\tsoon\n", ML_ITEM,
         ["mini.inter", "line 2", "timestamp"]),
        (ML_INTER, "id:token\ttitle:token_seq\n10\tx\n", ["mini.item", "line 1", "'item_id'"]),
        (ML_INTER, ML_ITEM.replace("20\tHeat", "21\tHeat"), ["mini.inter", "key '7'", "'20'", "mini.item"]),
        (ML_INTER.replace("12\t20\t2", "12\t2\xe9\t2").encode("latin-1"), ML_ITEM, ["mini.inter", "line 8", "UTF-8"]),
        ("", ML_ITEM, ["mini.inter", "empty"]),
    ],
)
def test_recbole_bad_input(tmp_path: Path, inter, item, parts):
    write(tmp_path / "mini.inter", inter)
    write(tmp_path / "mini.item", item)
    raises(parts, read_dataset, tmp_path)


def test_recbole_missing_item_file(recbole_dir: Path):
    (recbole_dir / "mini.item").unlink()
    raises(["mini.item", "not found"], read_dataset, recbole_dir / "mini.inter")


# --- Amazon --------------------------------------------------------------------------------------


def check_lab(ds, *, categories: str) -> None:
    assert ds.name == "Lab"
    assert seqs(ds) == {"U1": ["B", "A"], "U2": ["A", "B"]}
    assert ds.item_ids == ["A", "B"]
    assert ds.item_fields[0] == {
        "title": "Beaker &amp; lid", "brand": "Pyrex", "categories": categories, "description": "Line one. Line two."
    }
    n = ds.notes
    assert (n["duplicate_interactions"], n["time_ties"]) == (1, 1)
    assert (n["dropped_reviews_no_metadata"], n["dropped_reviews_no_title"]) == (1, 1)
    assert (n["kcore_removed_users"], n["kcore_removed_items"], n["kcore_removed_interactions"]) == (2, 2, 4)
    assert n["dropped_short_users"] == 0


def test_amazon_2018_gz(amazon2018: Path):
    ds = read_dataset(amazon2018, kcore=2, min_interactions=2)
    check_lab(ds, categories="Industrial & Scientific,Lab")
    assert ds.timestamps == [[10.0, 30.0], [5.0, 5.0]]  # U1 = B@10 A@30, U2 = A@5 B@5 (the kept events' times)
    assert ds.notes["reviews_file"] == "Lab_5.json.gz"


def test_amazon_2014_gz_python_literals(amazon2014: Path):
    ds = read_dataset(amazon2014, kcore=2, min_interactions=2)
    check_lab(ds, categories="Industrial & Scientific,Lab,Glass")


def test_amazon_plain_files_reviews_path_and_kcore_off(tmp_path: Path):
    write(tmp_path / "Lab_5.json", review_lines())
    write(tmp_path / "meta_Lab.json", meta_2018())
    ds = read_dataset(tmp_path / "Lab_5.json", kcore=0, min_interactions=2)
    assert seqs(ds) == {"U1": ["B", "C", "A"], "U2": ["A", "B"], "U4": ["D", "A"]}
    assert ds.notes["dropped_short_users"] == 1  # U3 keeps only C
    assert ds.item_ids == ["A", "B", "C", "D"]


def test_amazon_bad_review_lines(tmp_path: Path):
    write(tmp_path / "meta_Lab.json", meta_2018())
    lines = review_lines().splitlines(keepends=True)
    write(tmp_path / "Lab.json", "".join(lines[:3]) + '{"reviewerID": "U9", "unixReviewTime": 4}\n')
    err = raises(["Lab.json", "line 4", "'asin'"], read_dataset, tmp_path)
    assert err.line == 4 and err.key == "asin"
    write(tmp_path / "Lab.json", "".join(lines[:4]) + '{"reviewerID": "U9", "asin": "A",\n')
    raises(["Lab.json", "line 5", "malformed JSON"], read_dataset, tmp_path)
    write(tmp_path / "Lab.json", "".join(lines[:1]).encode() + b'{"reviewerID": "U\xff"}\n')
    raises(["Lab.json", "line 2", "UTF-8", "0xff"], read_dataset, tmp_path)


def test_amazon_bad_metadata_lines(tmp_path: Path):
    write(tmp_path / "Lab.json", review_lines())
    write(tmp_path / "meta_Lab.json", meta_2018() + '{"asin": "C", "title": \n')
    raises(["meta_Lab.json", "line 7", "malformed JSON"], read_dataset, tmp_path)
    write(tmp_path / "meta_Lab.json", meta_2014() + "{'asin': 'C', 'title': open('x')}\n")
    raises(["meta_Lab.json", "line 6", "Python-literal"], read_dataset, tmp_path)
    write(tmp_path / "meta_Lab.json", meta_2018() + '{"title": "no asin"}\n')
    raises(["meta_Lab.json", "line 7", "'asin'"], read_dataset, tmp_path)


def test_amazon_corrupt_gzip_and_ambiguous_dir(tmp_path: Path):
    (tmp_path / "Lab.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    write(tmp_path / "meta_Lab.json", meta_2018())
    raises(["Lab.json.gz", "cannot read"], read_dataset, tmp_path)
    write(tmp_path / "Other.json", review_lines())
    raises(["one reviews file", "Lab.json.gz", "Other.json"], read_dataset, tmp_path)


# --- detection and entry point -------------------------------------------------------------------


def test_detect_format(lcrec_dir: Path, tmp_path_factory):
    assert detect_format(lcrec_dir) == "lcrec"
    assert detect_format(lcrec_dir / "Tiny.inter.json") == "lcrec"
    rb = tmp_path_factory.mktemp("rb")
    write(rb / "m.inter", ML_INTER)
    write(rb / "m.item", ML_ITEM)
    assert detect_format(rb) == "recbole" and detect_format(rb / "m.item") == "recbole"
    am = tmp_path_factory.mktemp("am")
    write(am / "reviews_Lab_5.json.gz", review_lines())
    write(am / "meta_Lab.json.gz", meta_2014())
    assert detect_format(am) == "amazon" and detect_format(am / "reviews_Lab_5.json.gz") == "amazon"


def test_detect_format_failures(tmp_path: Path):
    write(tmp_path / "notes.txt", "hello")
    write(tmp_path / "data.csv", "a,b")
    raises([str(tmp_path), "no supported layout", "data.csv", "notes.txt"], detect_format, tmp_path)
    raises(["notes.txt", "cannot tell"], detect_format, tmp_path / "notes.txt")
    raises(["nowhere", "not found"], detect_format, tmp_path / "nowhere")
    write(tmp_path / "a.inter.json", "{}")
    write(tmp_path / "a.inter", "x:token\n")
    raises(["several formats", "lcrec", "recbole"], detect_format, tmp_path)


def test_unknown_fmt_and_missing_path(lcrec_dir: Path):
    raises(["unknown format 'csv'"], read_dataset, lcrec_dir, "csv")
    raises(["missing", "not found"], read_dataset, lcrec_dir / "missing", "lcrec")


def test_resolve_builtin(monkeypatch, tmp_path: Path):
    assert resolve_builtin(tmp_path) == tmp_path
    raises(["unknown builtin", "ml-100k"], resolve_builtin, "builtin:ml-1m")
    monkeypatch.setitem(readers.BUILTINS, "fake", ("no_such_dist_pauserec", "x/y"))
    raises(["builtin:fake", "no_such_dist_pauserec", "not installed"], resolve_builtin, "builtin:fake")


def test_readers_write_nothing(lcrec_dir: Path, amazon2018: Path):
    before = sorted(p.name for p in lcrec_dir.rglob("*"))
    read_dataset(lcrec_dir)
    read_dataset(amazon2018, kcore=2, min_interactions=2)
    assert sorted(p.name for p in lcrec_dir.rglob("*")) == before


# --- the real data -------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_scientific():
    if not (SCIENTIFIC / "Scientific.inter.json").is_file():
        pytest.skip(f"{SCIENTIFIC} is not present")
    start = time.perf_counter()
    ds = read_dataset(SCIENTIFIC)
    assert time.perf_counter() - start < 5
    assert (ds.name, ds.n_users, ds.n_items, ds.n_interactions) == ("Scientific", 8317, 4344, 58492)
    assert ds.notes["dropped_short_users"] == 0
    assert ds.item_ids[:3] == ["0", "1", "2"] and ds.user_ids[:2] == ["0", "1"]
    assert ds.sequences[0] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert min(len(s) for s in ds.sequences) == 5


@pytest.mark.slow
def test_builtin_ml100k():
    if importlib.util.find_spec("recbole") is None:
        pytest.skip("recbole is not installed")
    ds = read_dataset("builtin:ml-100k")
    assert (ds.name, ds.n_users, ds.n_items, ds.n_interactions) == ("ml-100k", 943, 1682, 100000)
    assert ds.notes["dropped_short_users"] == 0 and ds.notes["duplicate_interactions"] == 0
    assert ds.item_fields[0]["title"] == "Toy Story"
    assert ds.item_fields[0]["categories"] == "Animation,Children's,Comedy"
