"""Seeded synthetic dialogues and eval sets (notebook 01), from the word lists in data/text."""

from helpers.face import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "synth": ["DEV_SEED", "Dialogue", "DialogueGenerator", "DialogueSampler", "eval_cases", "template_regex"],
    "values": ["copy_pieces", "pieces_in_arguments"],
    "jsonl": ["iter_jsonl", "write_jsonl"],
    "text_data": ["read_text_data"],
})
