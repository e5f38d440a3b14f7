"""The agent domain (notebooks 01-03): the ten tools, their argument formats, the SQLite shop, and the chat
format that is the model's input/output contract."""

from helpers.face import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "tools": ["Shop", "TOOL_NAMES", "ToolArgumentError", "ToolSpec", "openai_tools", "schema_from_function",
              "validate_arguments"],
    "chat_format": ["BOS", "EOS", "CALL_END", "CALL_START", "CHAT_TEMPLATE", "parse_reply", "render",
                    "render_segments"],
})
