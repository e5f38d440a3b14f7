"""Quantization (notebooks 08-10): block formats, GGUF files, llama.cpp quantization, measurements, ONNX
Runtime. `from helpers.quant import measure` gives a module; the names below load theirs on first use."""

from helpers.face import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "quantize": ["FallbackWarning", "QuantResult", "estimate_size", "quantize", "valid_types"],
    "gguf_file": ["NotGGUFError", "all_tensor_values", "fallback_tensors", "metadata", "tensor_table",
                  "tensor_values", "write_resized_gguf", "type_counts"],
})
