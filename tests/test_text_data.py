"""data/text: the generator's word lists as plain files, parsed exactly and refused clearly when broken."""

import pytest

from helpers.data.text_data import TEXT_FILES, parse_text_data, read_text_data


def test_sections_nest_and_keep_spaces_and_empty_strings():
    text = '# a comment\n[a/b]\n"x "\n""\n\n[c]\n" y"\n[a/d]\n'
    assert parse_text_data(text) == {"a": {"b": ["x ", ""], "d": []}, "c": [" y"]}


@pytest.mark.parametrize("text, message", [
    ('"x"\n', "before the first \\[section\\]"),
    ("[a]\nwhere is my order\n", "not a JSON string.*double quotes"),
    ("[a]\n42\n", "is not a JSON string"),
    ('[a]\n"x"\n[a]\n"y"\n', "appears twice"),
])
def test_a_broken_file_names_the_line_and_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        parse_text_data(text, "f.txt")


def test_every_shipped_text_file_reads_and_is_registered_with_its_checksum():
    from helpers.registry import verify

    for name in TEXT_FILES:
        assert read_text_data(name)
    rows = {r["name"]: r for r in verify()}
    assert all(rows[TEXT_FILES[n]]["ok"] for n in TEXT_FILES)
    with pytest.raises(KeyError, match="choose one of"):
        read_text_data("nope")
