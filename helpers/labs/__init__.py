"""Auto-checks for the labs: one module per lab (`helpers.labs.lab01`, ...).

The checks test what a learner built, on fresh inputs, never on hard-coded answers. Lab 01's checks are
re-exported here so that `from helpers.labs import check_tokenizer` keeps working.
"""

from helpers.labs.lab01 import check_labels, check_replies_parse, check_tokenizer, check_training

__all__ = ["check_labels", "check_replies_parse", "check_tokenizer", "check_training"]
