"""The workbook model (notebook 01): tokenizer, training, exports to GGUF and ONNX Runtime GenAI."""

from helpers.face import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "train": ["ModelShape", "TrainConfig", "build_model"],  # the function: helpers.model.train.train
    "pipeline": ["prepare_tokenizer", "export_all", "interpolate_run"],
    "export": ["GGUF_TYPES", "hf_to_gguf", "hf_to_onnx_genai", "quantize_gguf", "quantized_gguf", "quantized_path",
               "llama_cpp_vocab", "vocab_tokenizer"],
})
