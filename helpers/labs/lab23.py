"""Auto-checks for lab 23 (past one machine). Every check raises AssertionError with a hint, or prints `PASS: ...`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def replicas_reference(users: int, requests_per_user_s: float, replica_rps: float, utilization: float) -> int:
    """Replicas so that the offered load stays under `utilization` of what the replicas serve at the p95 target."""
    if users <= 0:
        return 1
    return max(1, math.ceil(users * requests_per_user_s / (replica_rps * utilization) - 1e-9))


def check_replicas(fn: Callable[[int, float, float, float], int]) -> None:
    """Lab 23, task 1: the capacity model."""
    cases = [(10, 0.1, 2.0, 0.7), (100, 0.05, 5.0, 0.7), (7, 0.5, 3.5, 1.0), (1, 0.01, 20.0, 0.7), (0, 0.1, 2.0, 0.7),
             (1000, 0.2, 12.5, 0.8), (35, 0.1, 5.0, 0.7)]
    for users, rate, rps, util in cases:
        want, got = replicas_reference(users, rate, rps, util), fn(users, rate, rps, util)
        assert isinstance(got, int), f"return a whole number of replicas, got {got!r}"
        assert got == want, (f"{users} users x {rate} req/s each, {rps} req/s per replica at the p95 target, "
                             f"{util:.0%} target utilization -> {want} replicas, you said {got}. "
                             "Offered load = users x rate; one replica may carry rps x utilization; round UP; "
                             "never fewer than 1")
    _ok(f"{len(cases)} capacity questions answered")


def check_hpa(manifest: dict[str, Any], deployment: str, k8s_version: str = "1.34") -> None:
    """Lab 23, task 2: a HorizontalPodAutoscaler that validates offline and scales on queue depth, not CPU."""
    import kubernetes_validate

    assert manifest.get("kind") == "HorizontalPodAutoscaler", "write a HorizontalPodAutoscaler"
    try:
        kubernetes_validate.validate(manifest, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        raise AssertionError(f"the manifest fails Kubernetes {k8s_version}'s schema at {where or 'top'}: "
                             f"{exc.message}") from None
    spec = manifest["spec"]
    assert spec["scaleTargetRef"].get("name") == deployment, f"scaleTargetRef must name the Deployment {deployment!r}"
    assert 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"], "need 1 <= minReplicas <= maxReplicas"
    metrics = spec.get("metrics") or []
    assert metrics, "give a metric: without one the HPA falls back to CPU"
    for m in metrics:
        assert m["type"] not in ("Resource", "ContainerResource"), (
            "CPU or memory is the wrong signal for a model server: it sits near 100 % while batching whether it keeps "
            "up or not; scale on the queue")
        name = m[m["type"][0].lower() + m["type"][1:]]["metric"]["name"]
        assert "waiting" in name or "queue" in name, f"{name!r}: scale on the number of requests waiting"
    _ok(f"valid autoscaling/v2 HPA for {deployment!r}, scaling on {name}")
