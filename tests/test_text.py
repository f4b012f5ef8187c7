"""Item text rendering."""

from __future__ import annotations

from pauserec.config import TextConfig
from pauserec.data.text import clean_text, item_title, render_item_text

FIELDS = {
    "title": "Lab  Beaker &amp; Lid\n(500 ml)",
    "brand": "Pyrex",
    "categories": "Industrial &amp; Scientific,Lab",
    "description": "  Borosilicate\tglass.  ",
}


def test_render_all_fields_in_order():
    text = render_item_text(FIELDS, TextConfig())
    assert text == (
        "Title: Lab Beaker & Lid (500 ml); Brand: Pyrex; Categories: Industrial & Scientific,Lab; "
        "Description: Borosilicate glass."
    )


def test_render_follows_configured_order_and_subset():
    text = render_item_text(FIELDS, TextConfig(fields=["brand", "title"]))
    assert text == "Brand: Pyrex; Title: Lab Beaker & Lid (500 ml)"


def test_empty_and_absent_fields_are_skipped():
    fields = {"title": "Thing", "brand": "   ", "description": ""}
    assert render_item_text(fields, TextConfig()) == "Title: Thing"


def test_each_field_cut_after_cleaning():
    fields = {"title": "a&amp;b   c", "description": "x" * 50}
    text = render_item_text(fields, TextConfig(fields=["title", "description"], max_chars_per_field=4))
    # "a&b c" cut to 4 chars is "a&b " whose trailing space goes.
    assert text == "Title: a&b; Description: xxxx"


def test_other_field_names_get_readable_labels():
    text = render_item_text({"release_year": "1995"}, TextConfig(fields=["release_year"]))
    assert text == "Release year: 1995"


def test_item_title_is_cleaned():
    assert item_title(FIELDS) == "Lab Beaker & Lid (500 ml)"
    assert item_title({}) == ""


def test_clean_text_entities_and_whitespace():
    assert clean_text("It&rsquo;s &plusmn;1\u00a0mm\n\n ok") == "It\u2019s \u00b11 mm ok"
    assert clean_text(None) == ""
