"""Quantization track (notebooks 08-10): quantize the workbook's model and measure size, speed, quality."""
