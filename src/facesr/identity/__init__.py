"""Face identity: embedders (dlib, AdaFace), aggregation, and recognition metrics.

Imports are lazy: ``import facesr.identity`` loads neither torch nor dlib.
"""

_EXPORTS = {
    "facesr.identity.embedders": ["Embedder", "DlibEmbedder", "AdaFaceEmbedder", "l2_normalise"],
    "facesr.identity.aggregate": ["mean", "trimmed_mean", "quality_weighted_mean", "outlier_mask"],
    "facesr.identity.recognition": ["cosine_similarity", "similarity_matrix", "identify", "verify",
                                    "pairs_from_labels", "identity_split", "Identification", "Verification",
                                    "IdentitySplit"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'facesr.identity' has no attribute {name!r}")
