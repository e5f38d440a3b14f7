"""Moved: the chat format (the model's input/output contract) lives in `helpers.domain.chat_format`.

This module only keeps old imports working; new code imports from `helpers.domain.chat_format`."""

from helpers.domain.chat_format import *  # noqa: F403
from helpers.domain.chat_format import __all__, _arguments_text  # noqa: F401
