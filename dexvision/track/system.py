"""System utilization: CPU and RAM (psutil), GPU utilization and memory (NVML) when a GPU is present."""

from __future__ import annotations

import psutil


class SystemMonitor:
    """Samples `system/*` metrics; GPU ones only where NVML finds a GPU."""

    def __init__(self):
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call primes the counter
        psutil.cpu_percent(None)
        self._gpus = []
        try:
            import pynvml  # noqa: PLC0415 - provided by nvidia-ml-py; absent or failing without a GPU

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._gpus = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001 - no driver, no library, no device: no GPU metrics
            self._gpus = []

    @property
    def has_gpu(self) -> bool:
        return bool(self._gpus)

    def sample(self) -> dict[str, float]:
        vm = psutil.virtual_memory()
        out = {
            "system/cpu_percent": psutil.cpu_percent(None),
            "system/process_cpu_percent": self._process.cpu_percent(None),
            "system/ram_used_gb": (vm.total - vm.available) / 1e9,
            "system/process_rss_gb": self._process.memory_info().rss / 1e9,
        }
        for i, handle in enumerate(self._gpus):
            util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            out[f"system/gpu{i}_util_percent"] = float(util.gpu)
            out[f"system/gpu{i}_memory_gb"] = mem.used / 1e9
        return out
