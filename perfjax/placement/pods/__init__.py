"""TPU pods: slices on ICI tori joined by DCN, and sharded programs predicted on them."""

from perfjax.placement.pods._pods import Pod, pod, pods
from perfjax.placement.pods._predict import PodCollective, PodPrediction, predict_pod

__all__ = ["Pod", "PodCollective", "PodPrediction", "pod", "pods", "predict_pod"]
