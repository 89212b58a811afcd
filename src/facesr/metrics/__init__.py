"""Image-quality and consistency metrics with explicit protocols (dossier section 7)."""

from facesr.metrics.image_quality import detail_ratio, laplacian_energy, psnr, rgb_to_y, ssim
from facesr.metrics.consistency import lr_consistency

__all__ = ["psnr", "ssim", "detail_ratio", "laplacian_energy", "rgb_to_y", "lr_consistency"]
