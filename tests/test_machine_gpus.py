"""`helpers.machine.nvidia_gpus`: the one NVML reader behind the preflight and the monitoring snapshot.

No GPU here, so NVML's answers are played by a stand-in module with pynvml's names; what is tested is what the
workbook builds from them (records, the reason when there is no GPU, devices that report no utilisation)."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from helpers import machine
from helpers.monitoring import gpu_snapshot
from helpers.preflight import gpus


def _nvml(devices, init_error=False, util_error=False):
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    mod.NVMLError = NVMLError
    mod.NVML_TEMPERATURE_GPU = 0
    state = {"shutdown": 0}

    def init():
        if init_error:
            raise NVMLError("Driver Not Loaded")

    def util(h):
        if util_error:
            raise NVMLError("Not Supported")
        return SimpleNamespace(gpu=devices[h]["util"])

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    mod.nvmlDeviceGetCount = lambda: len(devices)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: devices[h]["name"]
    mod.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(free=devices[h]["free"], used=devices[h]["used"],
                                                            total=devices[h]["free"] + devices[h]["used"])
    mod.nvmlDeviceGetUtilizationRates = util
    mod.nvmlDeviceGetTemperature = lambda h, kind: 41
    mod.state = state
    return mod


@pytest.fixture
def fake_nvml(monkeypatch):
    def install(*args, **kwargs):
        mod = _nvml(*args, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", mod)
        return mod
    return install


H200 = {"name": b"NVIDIA H200", "free": 140 * 2**30, "used": 2**30, "util": 7}


def test_each_gpu_becomes_one_record_and_nvml_is_shut_down(fake_nvml):
    mod = fake_nvml([H200, {**H200, "name": "NVIDIA H200", "util": 0}])
    found, reason = machine.nvidia_gpus()
    assert reason is None and [g["index"] for g in found] == [0, 1]
    assert found[0] == {"index": 0, "name": "NVIDIA H200", "free_bytes": 140 * 2**30, "used_bytes": 2**30,
                        "total_bytes": 141 * 2**30, "utilization_percent": 7.0, "temperature_c": 41.0}
    assert mod.state["shutdown"] == 1
    assert gpus()[1] == {"index": 1, "name": "NVIDIA H200", "free_bytes": 140 * 2**30, "total_bytes": 141 * 2**30}
    snap = gpu_snapshot()
    assert snap["available"] and snap["gpus"][0]["memory_total_mb"] == pytest.approx(141 * 2**30 / 1e6)


def test_no_driver_gives_a_reason_and_an_empty_list(fake_nvml):
    fake_nvml([], init_error=True)
    found, reason = machine.nvidia_gpus()
    assert found == [] and "no NVIDIA GPU or driver" in reason
    assert gpus() == [] and gpu_snapshot() == {"available": False, "reason": reason}


def test_a_device_without_utilisation_still_reports_its_memory(fake_nvml):
    fake_nvml([H200], util_error=True)
    (g,), reason = machine.nvidia_gpus()
    assert reason is None and g["free_bytes"] == 140 * 2**30
    assert g["utilization_percent"] is None and g["temperature_c"] is None
